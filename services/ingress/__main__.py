import asyncio

from baton.bootstrap import Lifecycle, run
from baton.settings import Settings
from baton.store import make_engine
from services.ingress.server import start_smtp_server
from services.ingress.submit import KafkaSubmitter


async def main(settings: Settings, life: Lifecycle) -> None:
    engine = make_engine(settings.database_url)
    submitter = KafkaSubmitter(settings)
    # SMTP listens at once: until Kafka answers, clients get 451 rather than a refused connection.
    server = await start_smtp_server(settings, submitter, engine)
    life.add_ready_check(submitter.ready)
    connect = asyncio.create_task(submitter.start(life))
    await life.stopping.wait()
    await server.stop(drain_timeout=settings.smtp_timeout_s)
    await connect
    await submitter.stop()
    engine.dispose()


if __name__ == "__main__":
    run("ingress", main)
