"""The guides' "Strategy 3: batch processing", measured: N short emails classified one request each (``eachN``)
against one Collect-style request holding all N, numbered, whose answer is parsed back line by line
(``collectN``). Both ask the same question with the same instructions; the answer is held to the label set by a
grammar (llama.cpp's GBNF), so a small model's answer always parses and the output is the labels and nothing else.

The items are 20 short fictional emails written for this benchmark, four per label; ``label_accuracy`` is the share
the model labeled as written (a 135M model guesses; the number is there so a batch that saves tokens by answering
worse is seen, not priced as equal).
"""
from __future__ import annotations

import re

LABELS = ("billing", "technical", "sales", "scheduling", "spam")

INSTRUCTIONS = ("You sort incoming emails for a small software company. Categories: billing (invoices, charges, "
                "refunds), technical (bugs, outages, errors), sales (quotes, pricing, buying more), scheduling "
                "(meetings, calls, dates) and spam (unsolicited offers, prizes, scams).")
EACH_ASK = "Answer with the category of the email, one word."
COLLECT_ASK = ('Answer with one line per email, in order, in the form "N: category", and nothing else.')

ITEMS: tuple[tuple[str, str], ...] = (
    ("billing", "Hi, our invoice for October shows 14 seats but we only have 11 users. Could you correct it and "
                "send a new PDF? Thanks, Marta"),
    ("technical", "Since this morning the export button returns a 500 error for every project. Cleared the cache, "
                  "same result. Can someone look?"),
    ("sales", "We are growing to 40 people next quarter. What would the annual plan cost at that size, and is "
              "there a discount for paying upfront?"),
    ("scheduling", "Can we move Thursday's onboarding call to Friday at 10:00? Two of our team are travelling on "
                   "Thursday."),
    ("spam", "Congratulations! Your email was selected to receive a $500 gift card. Click here within 24 hours to "
             "claim your reward."),
    ("billing", "My card was charged twice for the same month, on the 2nd and the 3rd. Please refund the duplicate "
                "payment."),
    ("technical", "The desktop app crashes on startup after yesterday's update. Windows 11, version 4.2.1. Logs "
                  "attached."),
    ("sales", "Could you send a quote for the enterprise tier with single sign-on? Our procurement needs it by the "
              "end of the month."),
    ("scheduling", "Would next Tuesday or Wednesday afternoon work for the quarterly review? Please send a calendar "
                   "invite."),
    ("spam", "Boost your website traffic by 300% with our guaranteed SEO package. Limited offer, reply now for a "
             "free audit!"),
    ("billing", "We need the VAT number added to our invoices from now on, and the last three reissued with it."),
    ("technical", "Login with Google fails with 'redirect_uri_mismatch' for all our users since you changed the "
                  "domain."),
    ("sales", "Is there a non-profit price? We are a charity with 25 volunteers and would like to buy licenses "
              "for all of them."),
    ("scheduling", "I have to cancel our demo tomorrow at 3 pm. Could we find another slot later this week?"),
    ("spam", "Dear friend, I am a banker with an unclaimed fortune of 12 million dollars and need your help to "
             "transfer it."),
    ("billing", "Please cancel the auto-renewal and confirm we will not be charged for the next year."),
    ("technical", "Search results have been empty since the migration, even for documents we can open directly."),
    ("sales", "We would like to add the analytics module to our current subscription. How much extra per month?"),
    ("scheduling", "Reminder: the workshop is on the 14th at 9:30. Could you confirm who from your side will "
                   "attend?"),
    ("spam", "Hot singles in your area are waiting to meet you. Click the link to see their profiles now."),
)


def items(n: int) -> list[tuple[str, str]]:
    """The first n items (label, text), cycling through the 20 when n is larger."""
    return [ITEMS[i % len(ITEMS)] for i in range(n)]


def each_messages(text: str) -> list[dict]:
    return [{"role": "system", "content": f"{INSTRUCTIONS} {EACH_ASK}"}, {"role": "user", "content": text}]


def collect_messages(texts: list[str]) -> list[dict]:
    body = "\n\n".join(f"Email {i}:\n{t}" for i, t in enumerate(texts, 1))
    return [{"role": "system", "content": f"{INSTRUCTIONS} {COLLECT_ASK}"}, {"role": "user", "content": body}]


def _label_rule() -> str:
    return " | ".join(f'"{x}"' for x in LABELS)


def each_grammar() -> str:
    """GBNF: one label."""
    return f"root ::= {_label_rule()}\n"


def collect_grammar(n: int) -> str:
    """GBNF: exactly n lines "k: label", k = 1..n in order."""
    lines = " ".join(f'"{k}: " label "\\n"' for k in range(1, n + 1))
    return f"root ::= {lines}\nlabel ::= {_label_rule()}\n"


_LINE = re.compile(r"^\s*(\d+)\s*:\s*([a-z]+)\s*$")


def parse_each(text: str) -> str | None:
    word = text.strip().lower()
    return word if word in LABELS else None


def parse_collect(text: str, n: int) -> list[str | None]:
    """The label of each of the n items from "k: label" lines (None where a line is missing or not a label)."""
    out: list[str | None] = [None] * n
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and 1 <= int(m[1]) <= n and m[2] in LABELS:
            out[int(m[1]) - 1] = m[2]
    return out
