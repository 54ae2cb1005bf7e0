from baton.bootstrap import Lifecycle, run
from baton.kafka.stage import Stage
from baton.settings import Settings
from services.filter.handler import FilterHandler


async def main(settings: Settings, life: Lifecycle) -> None:
    stage = Stage("filter", settings, [settings.topic_accepted], FilterHandler(settings))
    life.add_ready_check(stage.ready)
    await stage.run(life)


if __name__ == "__main__":
    run("filter", main)
