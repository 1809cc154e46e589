"""The programmatic conversation check, as a table of real-looking conversations."""

from __future__ import annotations

import pytest

from generation_functions.conversation_check import check_conversation
from generation_functions.output_processors import parse_conversation

PAIRS = [
    (
        "What is a VerusID?",
        "A VerusID is a self-sovereign identity on the Verus blockchain that can hold funds, sign data and be revoked or recovered.",
    ),
    (
        "How do I register a VerusID from the command line?",
        "You first run registernamecommitment with the name and a controlling address, wait for it to be mined, and then call registeridentity with the commitment result.",
    ),
]

FAITHFUL = """## Conversation:
**AI Assistant:**
Hi! What would you like to know about Verus today?

**User:**
I keep hearing about identities. What is a VerusID exactly?

**AI Assistant:**
Good question! A VerusID is a self-sovereign identity on the Verus blockchain that can hold funds, sign data and be revoked or recovered.

**User:**
Nice. And how do I register a VerusID from the command line?

**AI Assistant:**
You first run registernamecommitment with the name and a controlling address, wait for it to be mined, and then call registeridentity with the commitment result. Let me know if you get stuck!
"""

MISSING_SECOND = FAITHFUL.split("**User:**\nNice.")[0]

SWAPPED = """**User:**
How do I register a VerusID from the command line?

**AI Assistant:**
You first run registernamecommitment with the name and a controlling address, wait for it to be mined, and then call registeridentity with the commitment result.

**User:**
What is a VerusID?

**AI Assistant:**
A VerusID is a self-sovereign identity on the Verus blockchain that can hold funds, sign data and be revoked or recovered.
"""

QUOTES_OTHER = FAITHFUL.replace(
    "Good question! A VerusID",
    "You first run registernamecommitment with the name and a controlling address, wait for it to be mined. Also, a VerusID",
)

INVENTED = FAITHFUL + """
**User:**
What is the current price of VRSC on exchanges?

**AI Assistant:**
VRSC trades on several exchanges and its price has risen sharply over the past months according to many analysts, who expect the market capitalisation to keep growing as more projects launch PBaaS chains and adopt VerusID for logins.
"""

THANKS = FAITHFUL + """
**User:**
Thanks, that helps!

**AI Assistant:**
You're welcome! Happy to help any time.
"""

PARAPHRASED_ANSWER = FAITHFUL.replace(
    "A VerusID is a self-sovereign identity on the Verus blockchain that can hold funds, sign data and be revoked or recovered.",
    "It is basically a username for crypto.",
)


@pytest.mark.parametrize(
    "text,problem",
    [
        (FAITHFUL, ""),
        (THANKS, ""),
        (MISSING_SECOND, "pair 2"),
        (SWAPPED, "pair 2"),
        (QUOTES_OTHER, "quotes the answer of pair 2"),
        (INVENTED, "adds unvetted content"),
        (PARAPHRASED_ANSWER, "pair 1"),
    ],
    ids=["faithful", "small-talk-at-end", "missing-pair", "out-of-order", "quotes-other-answer", "invented-exchange", "answer-lost"],
)
def test_conversation_check(text, problem):
    reason = check_conversation(parse_conversation(text), PAIRS)
    if problem:
        assert problem in reason
    else:
        assert reason == ""
