"""A release check in a team's own tests: the support-bot suite must keep passing.

    pytest examples/test_release.py                               # on the default model
    pytest examples/test_release.py --evaltune-model ./candidate  # on the model about to ship

The ``evaltune`` fixture comes from evaltune's pytest plugin (installed with evaltune). Its runs go into a
throw-away SQLite store unless ``--evaltune-store URL`` names the team's own.
"""

from pathlib import Path

SUITE = Path(__file__).parent / "support-bot.yaml"


def test_support_bot_keeps_its_level(evaltune):
    result = evaltune.run(SUITE, model="default")
    # The bar is the level of the model in production (the default model passes 5 of the 8 items): a candidate
    # that breaks more items, or stops finding the answers it found, fails the build with the items it broke.
    result.assert_passed(min_pass_rate=0.6, answer_match=1.0)
