"""The Verus facts in the few-shot examples, held to the Verus documents.

A model copies what its examples say, so a wrong default or an invented parameter
in a Verus example is taught to every pair it writes. Each fact below names the
wording the prompts use and the passage of ../shared/verus_corpus that states it
(docs/prompt-design.md, "Few-shot examples checked against the Verus documents",
has the audit as a table). The tests check that:

- every prompt file that shows an example still states its facts in that wording;
- no prompt file repeats a claim the audit found wrong or unsupported;
- the cited passage still says it, and what the negative set treats as unknown is
  really absent from the documents (these two skip when the corpus is not here).

Text is compared with runs of whitespace collapsed to one space, so that YAML and
TXT versions, and line breaks inside the documents, match alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "verus_corpus"
DOC = REPO / "docs" / "prompt-design.md"
AUDIT_HEADING = "## Few-shot examples checked against the Verus documents"

PROMPT_FILES = sorted(
    path
    for folder in [REPO / "prompts", REPO / "prompts_vision_paper", *sorted((REPO / "prompt_overrides").iterdir())]
    if folder.is_dir()
    for path in folder.iterdir()
    if path.suffix in (".yaml", ".txt")
)

# Anchors: the prompts that show an example, found by a sentence of its chunk.
VERUSID = r"If the keys of an identity are stolen, its revocation authority can revoke it\."
VERUSID_FULL = r"## Revoking and recovering a VerusID"
SENDCURRENCY = r"Source: sendcurrency\.txt"
POWER = r"Source: consensus-vision\.md"

WIKI_VERUSID = "raw_text_input_wiki/verusid.md"
DOCS_ADDRESSES = "raw_text_input_docs/README_addresses.md"
MEDIUM_KEYS = "raw_text_input_medium/How Verus Tames the Wild Private Key-*.txt"
API_SEND = "raw_text_input_api_text/sendcurrency.txt"
WIKI_COMMANDS = "raw_text_input_wiki/clifaq-02_verus_commands.md"
DOCS_POWER = "raw_text_input_docs/verus-proof-of-power.md"
DOCS_STAKING = "raw_text_input_docs/start-staking.md"
MEDIUM_TRILEMMA = "raw_text_input_medium/Scalability, Decentralization & Security*.txt"
VISION = "raw_text_input_vision_paper/VerusVisionPaper.txt"


@dataclass(frozen=True)
class Fact:
    key: str
    anchor: str  # regex: the prompt files that show this example
    said: tuple[str, ...]  # regexes every such prompt file must match
    sources: tuple[tuple[str, str], ...]  # (corpus file or glob, regex the passage must match)


FACTS = (
    # VerusID revocation and recovery (default set, negative and open-ended sets, filter and judge).
    Fact(
        "verusid-three-authorities",
        VERUSID_FULL,
        (r"Every VerusID is created with three authorities: its primary addresses, which spend its funds and sign for it, a revocation authority and a recovery authority\.",),
        ((MEDIUM_KEYS, r"Each VerusID is created with three authorities"),
         (MEDIUM_KEYS, r"Primary authority allows an ID to: receive deposits, spend funds, sign,")),
    ),
    Fact(
        "verusid-authorities-are-verusids",
        VERUSID_FULL,
        (r"The revocation and recovery authorities are themselves VerusIDs",),
        ((DOCS_ADDRESSES, r"revocation and recovery authorities \(which are also VerusIDs\)"),),
    ),
    Fact(
        "verusid-authorities-default-to-self",
        VERUSID_FULL,
        (r"and each one defaults to the identity itself\.",),
        ((WIKI_VERUSID, r"revocation authority, which defaults to the identity self"),
         (WIKI_VERUSID, r"recovery authority, which also defaults to self")),
    ),
    Fact(
        "verusid-assigned-at-creation",
        VERUSID_FULL,
        (r"When you create a VerusID you can assign them to the same identity, to two different ones, or leave them on self\.",),
        ((DOCS_ADDRESSES, r"When creating a VerusID users can assign a ``RevokeID`` and a ``RecoveryID`` to their VerusID\. "
                          r"They can be the same identities, different ones or appointed ``self``"),),
    ),
    Fact(
        "verusid-revoke-after-key-theft",
        VERUSID,
        (VERUSID,),
        ((WIKI_VERUSID, r"revoke the identity, .{0,200}in the case of key theft"),),
    ),
    Fact(
        "verusid-revoke-freezes-until-recovered",
        VERUSID,
        (r"Revoking creates a transaction that, once it is mined into a block, stops the identity from being used to spend or sign until it is recovered, which effectively freezes all of its funds\.",),
        ((WIKI_VERUSID, r"creates a valid transaction that, once mined into a block, prevents the identity from being used to spend or sign until it is recovered, effectively freezing all of its funds"),),
    ),
    Fact(
        "verusid-recovery-new-primary-addresses",
        r"The recovery authority can then recover",
        (r"The recovery authority can then recover the identity from its revoked state and give it new primary addresses\.",),
        ((WIKI_VERUSID, r"recover the ID from its revoked state, with the option to alter the primary authorities used to spend and sign"),),
    ),
    Fact(
        "verusid-funds-follow-the-identity",
        VERUSID_FULL,
        (r"Funds sent to a VerusID are controlled by the addresses the identity itself names, so after that change all future spends of those funds need the new keys, and the stolen keys control nothing\.",),
        ((WIKI_VERUSID, r"controlled by the single or multi-sig addresses specified in the identity itself"),
         (WIKI_VERUSID, r"all future spends of UTXOs sent to that identity follow the updated spend conditions and are subject to the updated keys"),
         (MEDIUM_KEYS, r"used to control Bob@ but now controls nothing")),
    ),
    Fact(
        "verusid-recovery-not-on-self",
        VERUSID_FULL,
        (r"Do not leave the recovery authority on self when the revocation authority is another identity: once the identity is revoked, it could no longer be recovered\.",),
        ((DOCS_ADDRESSES, r"Don't assign a ``RecoveryID`` to ``self`` when the ``RevokeID`` is assigned to another identity\. "
                          r"This way when you revoke an identity, you can not recover it anymore"),),
    ),
    # sendcurrency (API reference set).
    Fact(
        "sendcurrency-signature",
        SENDCURRENCY,
        (r"""sendcurrency "fromaddress" '\[\{"address":\.\.\. ,"amount":\.\.\.\},\.\.\.\]' \(minconfs\) \(feeamount\) \(returntxtemplate\)""",),
        ((API_SEND, r"""sendcurrency "fromaddress" '\[\{"address":\.\.\. ,"amount":\.\.\.\},\.\.\.\]' \(minconfs\) \(feeamount\) \(returntxtemplate\)"""),),
    ),
    Fact(
        "sendcurrency-fromaddress",
        SENDCURRENCY,
        (r'"fromaddress" \(string, required\) the Sapling address, VerusID or wildcard to send from; "\*", "R\*" and "i\*" are valid wildcards\.',
         r'When "fromaddress" names an address, all funds are taken from that address; otherwise they may come from any UTXOs the wallet controls\.',
         r'`fromaddress` is a required string: a Sapling address, a VerusID, or one of the wildcards `"\*"`, `"R\*"` and `"i\*"`\.'),
        ((API_SEND, r'"fromaddress" \(string, required\) The Sapling, VerusID, or wildcard address to send funds from\. "\*", "R\*", or "i\*" are valid wildcards'),
         (API_SEND, r'If "fromaddress" is specified, all funds will be taken from that address, otherwise funds may come from any source set of UTXOs controlled by the wallet')),
    ),
    Fact(
        "sendcurrency-required-output-keys",
        SENDCURRENCY,
        (r'"currency" \(string, required\) name of the source currency to send; defaults to the native currency of the chain',
         r'"amount" \(numeric, required\) how much to send, denominated in the source currency',
         r'"address" \(string, required\) the destination, optionally followed by a chain or system after the "@"',
         r'`"currency"`, `"amount"` and `"address"` are marked required\. `"currency"` names the source currency and defaults to the native currency of the chain'),
        ((API_SEND, r'"currency": "name" \(string, required\) Name of the source currency to send in this output, defaults to native of chain'),
         (API_SEND, r'"amount":amount \(numeric, required\) The numeric amount of currency, denominated in source currency'),
         (API_SEND, r'"address":"dest" \(string, required\) The address and optionally chain/system after the "@"')),
    ),
    Fact(
        "sendcurrency-optional-output-keys",
        SENDCURRENCY,
        (r'"convertto" \(string, optional\) a currency to convert to: a fractional currency or one of its reserves',
         r'"via" \(string, optional\) when the source and the destination currency are both reserves, a fractional currency they share, to convert through',
         r'"exportto" \(string, optional\) a chain or system name or ID to export to',
         r'"refundto" \(string, optional\) for pre-conversions, where refunds go; defaults to fromaddress',
         r'"memo" \(string, optional\) a text message, not hexadecimal, when the destination is a z-address; not supported on testnet'),
        ((API_SEND, r'"convertto":"name", \(string, optional\) Valid currency to convert to, either a reserve of a fractional, or fractional'),
         (API_SEND, r'"via":"name", \(string, optional\) If source and destination currency are reserves, via is a common fractional to convert through'),
         (API_SEND, r'"exportto":"name", \(string, optional\) Valid chain or system name or ID to export to'),
         (API_SEND, r'"refundto":"dest" \(string, optional\) For pre-conversions, this is where refunds will go, defaults to fromaddress'),
         (API_SEND, r'"memo":memo \(string, optional\) If destination is a zaddr \(not supported on testnet\), a string message \(not hexadecimal\)')),
    ),
    Fact(
        "sendcurrency-minconf-and-feeamount",
        SENDCURRENCY,
        (r'"minconf" \(numeric, optional, default=1\) only spend funds confirmed at least this many times',
         r'"feeamount" \(number, optional\) a fee to pay instead of the default miner\'s fee',
         r"`minconf`, the third argument \(numeric, default 1\)"),
        ((API_SEND, r'"minconf" \(numeric, optional, default=1\) only use funds confirmed at least this many times'),
         (API_SEND, r'"feeamount" \(number, optional\) specific fee amount requested instead of default miner\'s fee')),
    ),
    Fact(
        "sendcurrency-returntxtemplate",
        SENDCURRENCY,
        (r'"returntxtemplate" \(boolean, optional, default false\) if true, return the transaction information without submitting the transaction to the chain',
         r'"outputtotals", the totals in every currency that the transaction\'s inputs must cover, and "hextx", the transaction as hex with all the outputs and no inputs'),
        ((WIKI_COMMANDS, r'"returntxtemplate \(boolean, optional, default false\) if true, returns transaction info without submitting the transaction to the chain'),
         (API_SEND, r'"outputtotals" : \{currencyvaluemap\} Total outputs in all currencies that need to be input to the transaction'),
         (API_SEND, r'"hextx" : "hexstring" The transaction with all specified outputs and no inputs')),
    ),
    Fact(
        "sendcurrency-result-operation-id",
        SENDCURRENCY,
        (r"An operation id \(string\), to pass to z_getoperationstatus for the result of the operation\.",),
        ((API_SEND, r'"operation-id" : "opid" \(string\) The operation id'),
         (WIKI_COMMANDS, r'"operationid" \(string\) An operationid to pass to z_getoperationstatus to get the result of the operation')),
    ),
    Fact(
        "sendcurrency-example-call",
        SENDCURRENCY,
        (r"""verus sendcurrency "\*" '\[\{"currency":"btc","address":"RRehdmUV7oEAqoZnzEGBH34XysnWaBatct","amount":500\.0\}\]'""",),
        ((API_SEND, r"""verus sendcurrency "\*" '\[\{"currency":"btc","address":"RRehdmUV7oEAqoZnzEGBH34XysnWaBatct" ,"amount":500\.0\},\.\.\.\]'"""),),
    ),
    # Proof of Power (vision paper set).
    Fact(
        "power-proof-of-work-alone",
        POWER,
        (r"an attacker has to control more than 50% of the total power of all miners",
         r"Proof of work has also set off a mining arms race, and its side effects are massive power consumption and a significant ecological cost"),
        ((VISION, r"would require an attacker to control more than 50% of the total power of all miners"),
         (VISION, r"PoW has also sparked a mining arms race"),
         (VISION, r"side effect of the public blockchains. PoW security system is massive power consumption and significant ecological cost")),
    ),
    Fact(
        "power-proof-of-stake-alone",
        POWER,
        (r"Most serious alternatives center on proof of stake, yet it remains controversial how robust proof of stake is when users have incompatible interests, or when an attacker values their stake less than what they could gain by corrupting the system",),
        ((VISION, r"Most serious PoW alternatives center around the concept of proof-?of-stake"),
         (VISION, r"controversy over its robustness when users have incompatible interests, or when an attacker.s stake is not valued as highly as the perceived value to be gained by corrupting the system")),
    ),
    Fact(
        "power-half-blocks-each",
        POWER,
        (r"A statistical function has each block validated by either proof of work or proof of stake, so that on average half of all blocks are validated by miners and half by stakers, and the ratio stays at 50/50 even when the network's hashrate changes",),
        ((DOCS_POWER, r"statistical function that combines Proof of Work \(PoW\) and Proof of Stake \(PoS\) to validate each block by either PoW or PoS"),
         (DOCS_POWER, r"50% of all blocks validated by miners, and the other 50% by stakers"),
         (DOCS_POWER, r"Even if a change in network hashrate happens, the PoW/PoS ratio stays the same: 50/50%")),
    ),
    Fact(
        "power-chain-power",
        POWER,
        (r"more than 50% of its validation power, which Verus calls chain power: over 50% of both the chain's hashpower and its coin supply",),
        ((DOCS_POWER, r"more than 50% of the validation power is needed, called ``Chain Power``\. A 51% attack would require a combined value of over 50% of both the chain.s hashpower and its coin supply"),),
    ),
    Fact(
        "power-decentralizing-effect",
        POWER,
        (r"Proof of Power also has a decentralizing effect, because it gives holders a reason to keep their nodes online to support the network",),
        ((DOCS_POWER, r"VerusPoP provides a decentralizing effect on the network, incentivizing holders to keep nodes online to support the network"),),
    ),
    Fact(
        "power-low-barrier",
        POWER,
        (r"VerusHash favours CPUs, mobile phones and ARM devices for mining, and staking needs no minimum amount of VRSC and never locks the funds that stake",
         r"anyone can take part in mining and staking, which makes the protocol naturally decentralized"),
        ((MEDIUM_TRILEMMA, r"favors CPUs, mobile phones and ARM-devices for mining"),
         (MEDIUM_TRILEMMA, r"There is no minimum amount of VRSC need"),
         (DOCS_STAKING, r"there are no minimum requirements to start staking"),
         (MEDIUM_TRILEMMA, r"Funds staking are never locked"),
         (MEDIUM_TRILEMMA, r"accessible to everyone and thus creates a naturally decentralized protocol")),
    ),
)

# Claims the examples made before the audit, which the documents contradict or do not support.
FALSE_CLAIMS = (
    (r"three sets of keys", "the documents speak of three authorities, and two of them are VerusIDs, not keys"),
    (r"created or updated", "the documents have the authorities assigned when a VerusID is created; each is changed only by itself"),
    (r"different devices", "no document recommends separate devices"),
    (r"frozen where they are", "the documents: spending and signing stop until recovery, which effectively freezes the funds"),
    (r"pays `alice@`", "no document says payments after a recovery reach the owner by name"),
    (r"mike@", "the sendcurrency example is not in the documents; the documented one sends btc with the \"*\" wildcard"),
    (r'"currency" \(string, optional', "the API reference marks currency as required (defaulting to the native currency)"),
    (r'"minconfs" \(number', "the argument is \"minconf\", numeric, default=1"),
    (r"any transparent address|any address in the wallet|for any identity", "the documents list the wildcards without defining them"),
    (r"an R-address or a z-address", "the API reference names a Sapling address, a VerusID or a wildcard"),
    (r"rent the most hash power|data centers", "the vision paper and docs state neither"),
    (r"cost to revoke|costs? of revoking|revoking a VerusID costs", "the documents give the 0.0001 VRSC transaction fee, so a revocation cost is not an honest unknown"),
)

# What the negative set says it cannot state, with a pattern the corpus must not match.
UNKNOWNS = (
    (
        "verusid-revocation-limit",
        r"Is there a limit to how many times a VerusID can be revoked and recovered\?",
        r"(?:revok|recover)\w*[^.]{0,120}\b(?:limit(?:ed|s)?|at most|maximum number|how many times|number of times|more than once|only once)\b"
        r"|\b(?:limit(?:ed|s)?|at most|maximum number|how many times|number of times|more than once|only once)\b[^.]{0,120}(?:revok|recover)",
    ),
)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _prompt_texts() -> dict[Path, str]:
    return {path: _flat(path.read_text(encoding="utf-8")) for path in PROMPT_FILES}


def _corpus_file(pattern: str) -> Path:
    matches = sorted(CORPUS.glob(pattern))
    assert len(matches) == 1, f"{pattern} names {len(matches)} files in {CORPUS}"
    return matches[0]


needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/verus_corpus is not here")


def test_the_facts_cover_the_prompt_files():
    assert PROMPT_FILES, "no prompt files found"
    texts = _prompt_texts()
    for anchor in (VERUSID, VERUSID_FULL, SENDCURRENCY, POWER):
        assert any(re.search(anchor, text) for text in texts.values()), f"no prompt shows {anchor!r} any more"


@pytest.mark.parametrize("fact", FACTS, ids=[fact.key for fact in FACTS])
def test_every_prompt_that_shows_the_example_states_the_documented_fact(fact):
    texts = _prompt_texts()
    showing = [path for path, text in texts.items() if re.search(fact.anchor, text)]
    assert showing, f"no prompt file matches the anchor {fact.anchor!r}"
    for path in showing:
        for said in fact.said:
            assert re.search(said, texts[path]), f"{path.relative_to(REPO)} no longer says {said!r}"


@pytest.mark.parametrize(("claim", "why"), FALSE_CLAIMS, ids=[claim for claim, _ in FALSE_CLAIMS])
def test_no_prompt_repeats_a_claim_the_documents_do_not_make(claim, why):
    for path, text in _prompt_texts().items():
        found = re.search(claim, text)
        assert not found, f"{path.relative_to(REPO)} says {found.group(0)!r}: {why}"


def test_every_fact_is_in_the_audit_table():
    section = DOC.read_text(encoding="utf-8").split(AUDIT_HEADING, 1)
    assert len(section) == 2, f"{DOC.name} lacks the section {AUDIT_HEADING!r}"
    audit = section[1].split("\n## ", 1)[0]
    for key in [fact.key for fact in FACTS] + [key for key, _, _ in UNKNOWNS]:
        assert f"`{key}`" in audit, f"{key} is missing from the audit table"


@needs_corpus
@pytest.mark.parametrize("fact", FACTS, ids=[fact.key for fact in FACTS])
def test_the_cited_passage_still_says_it(fact):
    for pattern, says in fact.sources:
        text = _flat(_corpus_file(pattern).read_text(encoding="utf-8"))
        assert re.search(says, text), f"{pattern} no longer says {says!r}"


@needs_corpus
@pytest.mark.parametrize(("key", "asked", "absent"), UNKNOWNS, ids=[key for key, _, _ in UNKNOWNS])
def test_what_the_negative_set_calls_unknown_is_absent_from_the_documents(key, asked, absent):
    assert any(re.search(asked, text) for text in _prompt_texts().values()), f"no prompt asks {asked!r} any more"
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file():
            found = re.search(absent, _flat(path.read_text(encoding="utf-8", errors="replace")), re.IGNORECASE)
            assert not found, f"{path.relative_to(CORPUS)} may answer it: {found.group(0)!r}"
