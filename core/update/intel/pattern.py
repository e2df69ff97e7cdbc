"""STIX 2.1 patterns -> trail keys, through the maintained parser (stix2-patterns), never regexes.

Where it sits: intel sources (core/update/intel/) -> stix.py (one indicator) -> **pattern** -> the
trail keys of the indicator, or the reason it cannot be a trail. The parse tree is reduced to the
observations that are ORed together; each observation's comparison expression to a disjunction
of conjunctions; each conjunction must name one network observable:

- `domain-name:value = 'x'` -> domain; `ipv4-addr:value` / `ipv6-addr:value` -> address (IPv4 CIDR
  as a CIDR trail; `ISSUBSET 'a.b.c.d/n'` too); `url:value` -> `host/path` (scheme dropped);
- `network-traffic:dst_ref.value` (+ `dst_port`) -> address or `ip:port`;
- `network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'` (alone) -> a
  User-Agent trail `ua:<value>` (`user_agent_key`, shared with the MISP mapping);
- `x509-certificate:hashes.'SHA-1'` -> the certificate trail (lower-case hex);
- `IN (...)` is an OR of equalities.

Anything else is a reason from a fixed vocabulary (REASONS): an AND across observations or across
objects, file hashes, process observables, MATCHES/LIKE, negation, qualifiers, unparseable text.
The library is optional: without it `available()` is False and every pattern is refused as
"stix2-patterns not installed".
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any

from core.trails.index import UA_PREFIX
from core.update.feeds import strip_scheme

try:  # optional dependency (requirements-intel.txt)
    from stix2patterns.v21.grammars.STIXPatternParser import STIXPatternParser as _P
    from stix2patterns.v21.pattern import Pattern as _Pattern
except ImportError:  # pragma: no cover - exercised only without the package
    _P = None
    _Pattern = None

MAX_PATTERN = 8192          # characters; longer patterns are refused unparsed
MAX_CONJUNCTIONS = 256      # a DNF blowing up beyond this is refused
NOT_INSTALLED = "stix2-patterns not installed"
NETWORK_TYPES = ("domain-name", "ipv4-addr", "ipv6-addr", "url", "network-traffic", "x509-certificate")
USER_AGENT_PATH = "extensions.http-request-ext.request_header.user-agent"  # the STIX 2.1 HTTP request extension
FILE_TYPES = ("file", "artifact")
PROCESS_TYPES = ("process", "windows-registry-key", "mutex", "software", "user-account")


@dataclass(frozen=True)
class Test:
    """One comparison: object type, dotted path, operator (`=`, `ISSUBSET`) and value."""

    type: str
    path: str
    op: str
    value: Any


class Unmappable(Exception):
    """The pattern (or a part of it) cannot be a trail; str() is the counted reason."""


class _TreeOf:
    """A visitor that hands back the parse tree (Pattern.visit is the library's public access to it)."""

    def visit(self, tree: Any) -> Any:
        return tree


def available() -> bool:
    return _Pattern is not None


def pattern_keys(text: str) -> tuple[list[str], list[str]]:
    """(trail keys, reasons of the parts that are not trails). No keys and one reason when the
    whole pattern is refused. Never raises."""
    if _Pattern is None:
        return [], [NOT_INSTALLED]
    if not isinstance(text, str) or not text.strip():
        return [], ["no pattern"]
    if len(text) > MAX_PATTERN:
        return [], ["pattern too long"]
    try:
        tree = _Pattern(text).visit(_TreeOf())
        conjunctions: list[list[Test]] = []
        for comparison in _observations(tree):  # a refusal marker is already a conjunction list
            if isinstance(comparison, list):
                conjunctions.append(comparison)
            else:
                conjunctions.extend(_or_part(_dnf, comparison))
    except Unmappable as ex:
        return [], [str(ex)]
    except Exception:  # isolation point: the parser raises ParseException, RecursionError, ...
        return [], ["unparseable pattern"]
    keys: list[str] = []
    reasons: list[str] = []
    for conj in conjunctions:
        try:
            key = _conjunction_key(conj)
        except Unmappable as ex:
            reasons.append(str(ex))
            continue
        if key not in keys:
            keys.append(key)
    return keys, reasons


# --- parse tree -> observations -> disjunctive normal form ----------------------------------------

def _tokens(ctx: Any) -> set[str]:
    return {child.getText().upper() for child in ctx.getChildren() if not hasattr(child, "getRuleIndex")}


def _rules(ctx: Any) -> list[Any]:
    return [child for child in ctx.getChildren() if hasattr(child, "getRuleIndex")]


def _observations(ctx: Any) -> list[Any]:
    """The comparison expressions of the observations ORed at the top of the pattern."""
    assert _P is not None
    if isinstance(ctx, _P.ObservationExpressionSimpleContext):
        return [ctx.comparisonExpression()]
    if isinstance(ctx, _P.ObservationExpressionCompoundContext):
        return _observations(ctx.observationExpressions())
    if isinstance(ctx, (_P.ObservationExpressionWithinContext, _P.ObservationExpressionRepeatedContext,
                        _P.ObservationExpressionStartStopContext)):
        raise Unmappable("qualified observation")
    tokens = _tokens(ctx)
    if "FOLLOWEDBY" in tokens:
        raise Unmappable("FOLLOWEDBY sequence")
    if "AND" in tokens:
        raise Unmappable("AND across observations")
    return [obs for child in _rules(ctx) for obs in _or_part(_observations, child)]


def _or_part(walk: Any, ctx: Any) -> list[Any]:
    """One operand of an OR: its parts, or a refusal marker so the other operands still count."""
    try:
        return list(walk(ctx))
    except Unmappable as ex:
        return [[Test("", "", "!", str(ex))]]


def _dnf(ctx: Any) -> list[list[Test]]:
    """A comparison expression as a list of conjunctions (each a list of tests)."""
    assert _P is not None
    if isinstance(ctx, _P.ComparisonExpressionContext):
        return [conj for child in _rules(ctx) for conj in _or_part(_dnf, child)]
    if isinstance(ctx, _P.ComparisonExpressionAndContext):
        parts = [_dnf(child) for child in _rules(ctx)]
        size = 1
        for part in parts:
            size *= len(part)
        if size > MAX_CONJUNCTIONS:
            raise Unmappable("pattern too complex")
        return [[test for conj in combo for test in conj] for combo in itertools.product(*parts)]
    if isinstance(ctx, _P.PropTestParenContext):
        return _dnf(ctx.comparisonExpression())
    if ctx.NOT() if hasattr(ctx, "NOT") else False:
        raise Unmappable("negation")
    if isinstance(ctx, _P.PropTestEqualContext):
        if ctx.NEQ():
            raise Unmappable("negation")
        kind, path = _path(ctx.objectPath())
        return [[Test(kind, path, "=", _literal(ctx.primitiveLiteral()))]]
    if isinstance(ctx, _P.PropTestSetContext):
        kind, path = _path(ctx.objectPath())
        values = [_literal(child) for child in _rules(ctx.setLiteral())]
        if len(values) > MAX_CONJUNCTIONS:
            raise Unmappable("pattern too complex")
        return [[Test(kind, path, "=", value)] for value in values]
    if isinstance(ctx, _P.PropTestIsSubsetContext):
        kind, path = _path(ctx.objectPath())
        return [[Test(kind, path, "ISSUBSET", _string(ctx.StringLiteral().getText()))]]
    if isinstance(ctx, _P.PropTestRegexContext):
        raise Unmappable("MATCHES")
    if isinstance(ctx, _P.PropTestLikeContext):
        raise Unmappable("LIKE")
    if isinstance(ctx, _P.PropTestOrderContext):
        raise Unmappable("ordering comparison")
    if isinstance(ctx, _P.PropTestExistsContext):
        raise Unmappable("EXISTS")
    raise Unmappable("unsupported comparison")


def _path(ctx: Any) -> tuple[str, str]:
    """(object type, dotted path with quotes removed) of an objectPath."""
    kind = ctx.objectType().getText()
    parts: list[str] = []
    for token in _leaves(ctx):
        text = token.getText()
        if text in (".", "[", "]", ":") or text == kind and not parts:
            continue
        parts.append(_string(text) if text.startswith("'") else text)
    return kind, ".".join(parts)


def _leaves(ctx: Any) -> list[Any]:
    out: list[Any] = []
    for child in ctx.getChildren():
        if hasattr(child, "getRuleIndex"):
            out.extend(_leaves(child))
        else:
            out.append(child)
    return out


def _string(text: str) -> str:
    """A STIX string literal's value: quotes removed, `\\'` and `\\\\` unescaped."""
    body = text[1:-1] if len(text) >= 2 and text[0] == "'" and text[-1] == "'" else text
    out: list[str] = []
    escaped = False
    for char in body:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _literal(ctx: Any) -> Any:
    text = ctx.getText()
    if text.startswith("'"):
        return _string(text)
    if text.lstrip("-").isdigit():
        return int(text)
    return text


# --- one conjunction -> one trail key --------------------------------------------------------------

def _conjunction_key(tests: list[Test]) -> str:
    for test in tests:
        if test.op == "!":
            raise Unmappable(test.value)
    kinds = {test.type for test in tests}
    if len(kinds) > 1:
        raise Unmappable("AND across objects")
    kind = tests[0].type
    if kind == "network-traffic":
        return _traffic_key(tests)
    if kind in FILE_TYPES:
        raise Unmappable("file observable")
    if kind in PROCESS_TYPES:
        raise Unmappable("process observable")
    if kind not in NETWORK_TYPES:
        raise Unmappable("other observable")
    if len(tests) > 1:
        raise Unmappable("AND of values")
    test = tests[0]
    value = test.value
    if not isinstance(value, str) or not value:
        raise Unmappable("not a string value")
    if kind == "x509-certificate":
        if test.path.lower().replace("-", "") not in ("hashes.sha1",) or test.op != "=":
            raise Unmappable("certificate field other than SHA-1")
        digest = value.lower()
        if len(digest) != 40 or any(c not in "0123456789abcdef" for c in digest):
            raise Unmappable("bad certificate hash")
        return digest
    if test.path != "value":
        raise Unmappable("field other than value")
    if kind == "domain-name":
        return value.lower().rstrip(".")
    if kind == "url":
        return strip_scheme(value)
    return address_key(value)


def address_key(value: str) -> str:
    """An address or IPv4 network as a trail key (a /32 or /128 network is the address)."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise Unmappable("bad address") from None
    if network.num_addresses == 1:
        return str(network.network_address)
    if network.version == 6:
        raise Unmappable("ipv6 network")
    return str(network)


def user_agent_key(value: str) -> str:
    """The trail key of an indicator's User-Agent: `ua:` + the value (stripped); the update's row
    validation then refuses generic ones (core/update/sanity.py)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise Unmappable("bad user-agent value")
    return UA_PREFIX + text


def _traffic_key(tests: list[Test]) -> str:
    address: str | None = None
    port: int | None = None
    agent: str | None = None
    for test in tests:
        if test.path.lower() == USER_AGENT_PATH and test.op == "=" and isinstance(test.value, str):
            if agent is not None:
                raise Unmappable("AND of values")
            agent = user_agent_key(test.value)
        elif test.path == "dst_ref.value" and test.op in ("=", "ISSUBSET") and isinstance(test.value, str):
            if address is not None:
                raise Unmappable("AND of values")
            address = address_key(test.value)
        elif test.path == "dst_port" and isinstance(test.value, int):
            port = test.value
        elif test.path in ("dst_ref.type", "protocols", "protocols.*") or test.path.startswith("protocols."):
            continue
        elif test.path.startswith("src_"):
            raise Unmappable("network-traffic source")
        else:
            raise Unmappable("network-traffic field")
    if agent is not None:
        if address is not None or port is not None:
            raise Unmappable("user-agent AND other fields")  # no trail holds both
        return agent
    if address is None:
        raise Unmappable("network-traffic without destination address")
    if port is None:
        return address
    if "/" in address:
        raise Unmappable("network with port")
    if not 0 < port < 65536:
        raise Unmappable("bad port")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
