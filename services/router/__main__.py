from baton.bootstrap import Lifecycle, run
from baton.kafka.stage import Stage
from baton.settings import Settings
from services.router.handler import RouterHandler
from services.router.planner import Planner


async def main(settings: Settings, life: Lifecycle) -> None:
    planner = Planner.from_settings(settings)
    stage = Stage("router", settings, [settings.topic_filtered], RouterHandler(settings, planner))
    life.add_ready_check(stage.ready)
    await stage.run(life)


if __name__ == "__main__":
    run("router", main)
