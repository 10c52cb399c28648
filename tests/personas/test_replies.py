"""Text replies read the way people write them (personas.services.replies.parse_reply)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from hypothesis import given
from hypothesis import strategies as st

from personas.services.replies import Reply, parse_reply


@pytest.mark.parametrize(
    ("body", "intent", "keyword"),
    [
        # every default opt-out keyword
        ("STOP", "opt_out", "STOP"),
        ("stopall", "opt_out", "STOPALL"),
        ("stop all", "opt_out", "STOP ALL"),
        ("Unsubscribe", "opt_out", "UNSUBSCRIBE"),
        ("CANCEL", "opt_out", "CANCEL"),
        ("end", "opt_out", "END"),
        ("Quit", "opt_out", "QUIT"),
        ("revoke", "opt_out", "REVOKE"),
        ("OptOut", "opt_out", "OPTOUT"),
        ("opt out", "opt_out", "OPT OUT"),
        ("opt-out", "opt_out", "OPT OUT"),
        # punctuation, emoji, quotes, case, width, spacing
        ("Stop.", "opt_out", "STOP"),
        ("STOP!!", "opt_out", "STOP"),
        (" stop ", "opt_out", "STOP"),
        ('"Stop"', "opt_out", "STOP"),
        ("“Stop”", "opt_out", "STOP"),
        ("'stop'", "opt_out", "STOP"),
        ("Stop 🛑", "opt_out", "STOP"),
        ("🛑🛑STOP🛑", "opt_out", "STOP"),
        ("ＳＴＯＰ", "opt_out", "STOP"),
        ("sToP", "opt_out", "STOP"),
        ("\tSTOP\n", "opt_out", "STOP"),
        ("S\u200bTOP", "opt_out", "STOP"),  # zero-width space inside the word
        ("stop\u00a0", "opt_out", "STOP"),  # no-break space
        ("STOP™", "opt_out", "STOP"),  # a symbol never becomes letters (NFKC makes ™ "TM")
        # short replies asking to stop
        ("stop please", "opt_out", "STOP"),
        ("please stop texting me", "opt_out", "STOP"),
        ("pls unsubscribe me", "opt_out", "UNSUBSCRIBE"),
        ("Please, STOP ALL messages!", "opt_out", "STOP ALL"),
        ("I want to opt out", "opt_out", "OPT OUT"),
        ("yes stop", "opt_out", "STOP"),  # opt-out wins over everything
        ("Stop. Yes.", "opt_out", "STOP"),
        ("don't text me, stop", "opt_out", "STOP"),
        # long messages that merely mention a keyword
        ("I will not stop shopping at your store, you have the best prices in town", "other", ""),
        ("When does the sale end? I want to buy a coat for my son", "other", ""),
        ("stopping", "other", ""),
        ("unstoppable deals", "other", ""),
        # confirm
        ("YES", "confirm", "YES"),
        ("Yes!", "confirm", "YES"),
        ("yes please", "confirm", "YES"),
        ("Yes 👍", "confirm", "YES"),
        ("Yep sure", "confirm", "YEP"),
        ("y", "confirm", "Y"),
        ("Yeah.", "confirm", "YEAH"),
        ("yup", "confirm", "YUP"),
        ("Sí", "other", ""),  # SI only without the accent
        ("si", "confirm", "SI"),
        ("Oui !", "confirm", "OUI"),
        ("ＹＥＳ", "confirm", "YES"),
        ("Yes, I would love to get texts about offers and rewards from you", "confirm", "YES"),
        ("yesterday", "other", ""),
        ("eyes", "other", ""),
        # START and HELP: whole reply only
        ("start", "opt_in", "START"),
        ("unstop", "opt_in", "UNSTOP"),
        ("Subscribe!", "opt_in", "SUBSCRIBE"),
        ("please start", "other", ""),
        ("HELP?", "help", "HELP"),
        ("info", "help", "INFO"),
        ("help me find my receipt", "other", ""),
        # nothing to read
        ("", "other", ""),
        ("   ", "other", ""),
        ("🙂", "other", ""),
        ("?!", "other", ""),
        ("no", "other", ""),
        ("thanks", "other", ""),
    ],
)
def test_replies_are_read_as_people_write_them(body, intent, keyword):
    assert parse_reply(body) == Reply(intent, keyword)


SURROUNDINGS = st.lists(
    st.one_of(
        st.characters(categories=["P", "S", "Zs"]),  # punctuation, symbols (emoji), spaces
        st.sampled_from(["🛑", "🙏", "👍🏽", "❤️", "👨‍👩‍👧", "\u200d", "\ufe0f", "\n", "\t", "™"]),
    ),
    max_size=5,
).map("".join)


@given(
    keyword=st.sampled_from(django_settings.PERSONAS_SMS_OPT_OUT_KEYWORDS),
    before=SURROUNDINGS,
    after=SURROUNDINGS,
    cases=st.lists(st.booleans(), min_size=16, max_size=16),
)
def test_an_opt_out_keyword_in_any_punctuation_emoji_or_case_opts_out(
    keyword, before, after, cases
):
    cased = "".join(c.lower() if lower else c for c, lower in zip(keyword, cases, strict=False))
    assert parse_reply(f"{before}{cased}{after}").intent == "opt_out"


def test_the_keyword_lists_come_from_settings(settings):
    assert parse_reply("arrête").intent == "other"
    assert parse_reply("end").intent == "opt_out"
    settings.PERSONAS_SMS_OPT_OUT_KEYWORDS = ["STOP", "ARRÊTE"]
    settings.PERSONAS_SMS_CONFIRM_KEYWORDS = ["YES", "OK"]
    settings.PERSONAS_SMS_SHORT_REPLY_WORDS = 2
    assert parse_reply("Arrête !") == Reply("opt_out", "ARRÊTE")
    assert parse_reply("end").intent == "other"
    assert parse_reply("OK!") == Reply("confirm", "OK")
    assert parse_reply("stop now").intent == "opt_out"
    assert parse_reply("please stop now").intent == "other"  # longer than 2 words
