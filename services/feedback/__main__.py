from baton.bootstrap import Lifecycle, run
from baton.kafka.stage import Stage
from baton.settings import Settings
from services.feedback.handler import OutcomeCounter
from services.feedback.metrics import OUTCOMES_SEEN


async def main(settings: Settings, life: Lifecycle) -> None:
    stage = Stage("feedback", settings, [settings.topic_result], OutcomeCounter(OUTCOMES_SEEN))
    life.add_ready_check(stage.ready)
    await stage.run(life)


if __name__ == "__main__":
    run("feedback", main)
