from baton.bootstrap import Lifecycle, run
from baton.kafka.stage import Stage
from baton.settings import Settings
from services.sender.deliver import Deliverer
from services.sender.handler import SenderHandler


async def main(settings: Settings, life: Lifecycle) -> None:
    deliverer = Deliverer.from_settings(settings)
    handler = SenderHandler(settings, deliverer)
    stage = Stage("sender", settings, handler.topics, handler)
    life.add_ready_check(stage.ready)
    try:
        await stage.run(life)
    finally:
        await deliverer.close()


if __name__ == "__main__":
    run("sender", main)
