"""The notifier: consumes `result` (and later `notifications`) and tells operators.

Webhooks and e-mail come with the notification issue; until then it validates and counts Outcomes
on the shared loop, so the deployment, lag and metrics are real.
"""

from baton.bootstrap import Lifecycle, run
from baton.kafka.stage import Stage
from baton.settings import Settings
from services.feedback.handler import OutcomeCounter
from services.notifier.metrics import OUTCOMES_SEEN


async def main(settings: Settings, life: Lifecycle) -> None:
    stage = Stage("notifier", settings, [settings.topic_result], OutcomeCounter(OUTCOMES_SEEN))
    life.add_ready_check(stage.ready)
    await stage.run(life)


if __name__ == "__main__":
    run("notifier", main)
