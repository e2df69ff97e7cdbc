"""Configuration: the shipped maltrail.conf, the parser's rules, and the CLIs' handling of bad values."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import typing

import pcapy
import pytest

from core.config import ROOT_DIR, SCHEMA, Config, ConfigError, build_config, load_config
from core.events.severity import Severity

CONF = os.path.join(ROOT_DIR, "maltrail.conf")
SETTING_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)(?:[ \t]|$)")


def documented_keys() -> set[str]:
    """Keys that appear as a setting line (`KEY value`, `#KEY value` or a bare array `KEY`)."""
    keys = set()
    with open(CONF, encoding="utf-8") as handle:
        for line in handle:
            m = SETTING_LINE.match(line)
            if m:
                keys.add(m.group(1))
    return keys


def write(tmp_path, text: str) -> str:
    path = tmp_path / "test.conf"
    path.write_text(text)
    return str(path)


# --- the shipped file ------------------------------------------------------------------------------

def test_shipped_file_parses_without_warnings():
    config = load_config(CONF, env={})
    assert config.warnings == []
    assert config.HTTP_ADDRESS == "127.0.0.1"
    assert config.HTTP_PORT == 8338
    assert config.USE_HEURISTICS is True
    assert config.USE_FEED_UPDATES is True
    assert config.DISABLE_TRAIL_UPDATES is False
    assert config.LOG_DIR == "/var/log/maltrail"
    assert config.MONITOR_INTERFACE == "any"
    assert config.CAPTURE_BUFFER > 0


def test_shipped_admin_password_is_changeme():
    config = load_config(CONF, env={})
    assert len(config.USERS) == 1
    name, digest, uid, netfilter = config.USERS[0].split(":")
    assert (name, uid, netfilter) == ("admin", "0", "")
    assert digest == hashlib.sha256(b"changeme!").hexdigest()


def test_every_schema_key_documented_and_nothing_unknown():
    documented = documented_keys()
    assert sorted(set(SCHEMA) - documented) == [], "SCHEMA keys missing from maltrail.conf"
    assert sorted(documented - set(SCHEMA)) == [], "maltrail.conf documents keys SCHEMA lacks"


def test_every_setting_has_a_comment_above_it():
    with open(CONF, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines):
        if not SETTING_LINE.match(line):
            continue
        above = number - 1
        while above >= 0 and (SETTING_LINE.match(lines[above]) or lines[above].startswith(("    ", "#    "))):
            above -= 1
        assert above >= 0 and lines[above].startswith("# "), f"undocumented setting line {number + 1}: {line}"


def code_files():
    for folder in ("core", "trails", "plugins", "tools", "bench"):
        for base, _dirs, files in os.walk(os.path.join(ROOT_DIR, folder)):
            for name in files:
                if name.endswith(".py"):
                    yield os.path.join(base, name)
    for name in ("sensor.py", "server.py"):
        if os.path.exists(os.path.join(ROOT_DIR, name)):
            yield os.path.join(ROOT_DIR, name)


READ_KEY = re.compile(r"""\b(?:config|cfg|self\.config|self\._config)\s*\.\s*(?:get\(\s*["']([A-Z][A-Z0-9_]*)["']|([A-Z][A-Z0-9_]*)\b)""")


def test_every_key_read_in_code_is_in_schema():
    seen = {}
    for path in code_files():
        with open(path, encoding="utf-8") as handle:
            for m in READ_KEY.finditer(handle.read()):
                key = m.group(1) or m.group(2)
                seen.setdefault(key, os.path.relpath(path, ROOT_DIR))
    assert seen, "the scan found no configuration reads at all"
    unknown = {key: where for key, where in seen.items() if key not in SCHEMA and key != "KEY" and not key.startswith("BLACKLIST")}
    assert unknown == {}


def setting_blocks() -> dict[str, str]:
    """key -> the comment text of the block it sits in (comment lines up to the blank line above)."""
    with open(CONF, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    blocks, comment, keys = {}, [], []
    for line in lines + [""]:
        m = SETTING_LINE.match(line)
        if m:
            keys.append(m.group(1))
        elif line.startswith("# "):
            comment.append(line[2:])
        elif not line.strip():
            blocks.update((key, " ".join(comment)) for key in keys)
            comment, keys = [], []
    return blocks


def test_every_key_is_read_by_the_code_or_labelled_accepted_with_no_effect():
    code = ""
    for path in code_files():
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if os.path.relpath(path, ROOT_DIR) == os.path.join("core", "config.py"):
            text = re.sub(r"(?m)^    [A-Z][A-Z0-9_]*: .*$", "", text)  # the declarations are not reads
        code += text
    blocks = setting_blocks()
    for key, spec in SCHEMA.items():
        read = re.search(rf"\.{key}\b", code) is not None
        labelled = "accepted, no effect" in blocks[key]
        if spec.no_effect:
            assert not read, f"{key} is declared with no effect but the code reads it"
            assert labelled, f"maltrail.conf does not say that {key} is accepted with no effect"
        else:
            assert read, f"{key} is never read: wire it or declare it no_effect (and label it)"
            assert not labelled, f"maltrail.conf says {key} has no effect, but the code reads it"


def test_declared_types_match_the_parsed_values(tmp_path):
    hints = typing.get_type_hints(Config)
    defaults = build_config({}, env={})
    given = load_config(CONF, env={})
    for key in SCHEMA:
        for config in (defaults, given):
            value = getattr(config, key)
            expected = hints[key]
            if typing.get_origin(expected) is typing.Union or isinstance(expected, type(int | None)):
                options = typing.get_args(expected)
            else:
                options = (expected,)
            types = tuple(typing.get_origin(t) or t for t in options)
            assert isinstance(value, types), (key, value, expected)


def test_unknown_keys_warn_with_the_nearest_known_key(tmp_path):
    config = load_config(write(tmp_path, "USE_HEURISTIC true\nCAPTURE_SNAPLN 100\nZZZ_NOTHING_LIKE_IT 1\n"
                                         "BLACKLIST_SCANNERS\n    info ~ scan\n"), env={})
    assert config.USE_HEURISTICS is False  # the misspelt key changes nothing
    assert config.unknown_keys == ["USE_HEURISTIC", "CAPTURE_SNAPLN", "ZZZ_NOTHING_LIKE_IT"]
    assert config.warnings == ["unknown configuration key USE_HEURISTIC: did you mean USE_HEURISTICS?",
                               "unknown configuration key CAPTURE_SNAPLN: did you mean CAPTURE_SNAPLEN?",
                               "unknown configuration key ZZZ_NOTHING_LIKE_IT: ignored"]
    assert config.blacklists == {"": [], "SCANNERS": ["info ~ scan"]}  # a named list is not unknown


def test_environment_switches_that_are_not_keys_are_not_unknown_keys(tmp_path):
    env = {"MALTRAIL_PURE_PYTHON": "1", "MALTRAIL_CHROMIUM": "/usr/bin/chromium", "MALTRAIL_USE_HEURISTIC": "1"}
    config = load_config(write(tmp_path, "HTTP_PORT 8338\n"), env=env)
    assert config.unknown_keys == ["USE_HEURISTIC"]  # a misspelt override is still caught


def test_config_is_frozen_and_replace_gives_a_changed_copy():
    config = build_config({}, env={})
    with pytest.raises(AttributeError):
        config.HTTP_PORT = 1
    changed = config.replace(HTTP_PORT=9000)
    assert (config.HTTP_PORT, changed.HTTP_PORT) == (8338, 9000)
    with pytest.raises(TypeError):
        config.replace(NO_SUCH_KEY=1)


def test_shipped_capture_filter_compiles_for_common_link_types():
    config = load_config(CONF, env={})
    for dlt in (pcapy.DLT_EN10MB, pcapy.DLT_LINUX_SLL, pcapy.DLT_RAW):
        pcapy.compile(dlt, 2000, config.CAPTURE_FILTER, 1, 0)


def test_shipped_severity_rule_is_the_default_table():
    """The shipped config leaves REMOTE_SEVERITY_REGEX unset, so data/severity.json is in force
    (its cases: tests/test_severity.py); the commented example is a valid rule of its own."""
    config = load_config(CONF, env={})
    assert config.REMOTE_SEVERITY_REGEX is None
    with open(CONF, encoding="utf-8") as handle:
        example = next(line for line in handle if line.startswith("#REMOTE_SEVERITY_REGEX "))
    assert Severity(example.split(" ", 1)[1].strip())("ransomware (malware)", "(static)") == "high"
    assert Severity(example.split(" ", 1)[1].strip())("emotet (malware)", "(static)") == "medium"


def test_shipped_fail2ban_regex():
    regex = re.compile(load_config(CONF, env={}).FAIL2BAN_REGEX)
    assert regex.search("potential web scanning")
    assert regex.search("potential sql injection")
    assert regex.search("known attacker")
    assert not regex.search("emotet (malware)")


# --- parser rules ----------------------------------------------------------------------------------

def test_arrays_and_inline_comments(tmp_path):
    path = write(tmp_path, "LOG_DIR /tmp/x  # where\nUSERS\n    a:1:0:\n\n    b:2:1000:10.0.0.0/8\n"
                           "#    c:3:0:\nIP_ALIASES\n    8.8.8.8:google\nHTTP_PORT 9000\n")
    config = load_config(path, env={})
    assert config.USERS == ["a:1:0:", "b:2:1000:10.0.0.0/8"]
    assert config.IP_ALIASES == ["8.8.8.8:google"]
    assert config.LOG_DIR == "/tmp/x"
    assert config.HTTP_PORT == 9000


@pytest.mark.parametrize("raw,expected", [("true", True), ("1", True), ("yes", True), ("On", True),
                                          ("false", False), ("0", False), ("no", False), ("off", False)])
def test_booleans_by_prefix(tmp_path, raw, expected):
    path = write(tmp_path, f"USE_HEURISTICS {raw}\nSHOW_DEBUG {raw}\nENABLE_SOMETHING_NEW {raw}\n")
    config = load_config(path, env={})
    assert config.USE_HEURISTICS is expected
    assert config.SHOW_DEBUG is expected
    assert config.extra["ENABLE_SOMETHING_NEW"] is expected  # unknown key, still a boolean by its prefix
    assert config.unknown_keys == ["ENABLE_SOMETHING_NEW"]


def test_variable_expansion(tmp_path):
    path = write(tmp_path, "LOG_DIR $SYSTEM_LOG_DIR/maltrail\nSENSOR_NAME ${HOSTNAME}-edge\n"
                           "TRAILS_FILE $MYBASE/trails.csv\nCUSTOM_TRAILS_DIR ./trails/custom\n")
    config = load_config(path, env={"HOSTNAME": "box1", "MYBASE": "/srv/m"})
    assert config.LOG_DIR == "/var/log/maltrail"
    assert config.SENSOR_NAME == "box1-edge"
    assert config.TRAILS_FILE == "/srv/m/trails.csv"
    assert config.CUSTOM_TRAILS_DIR == os.path.join(ROOT_DIR, "trails", "custom")


def test_a_salted_users_hash_from_hash_password_loads_and_logs_in(tmp_path):
    """`server.py --hash-password` prints `pbkdf2_sha256$<iterations>$<salt>$<hash>`; pasted into
    USERS it loads as written (no `$` is a variable there) and the real server logs in with it."""
    from tests.kit.server import Server

    printed = subprocess.run([sys.executable, os.path.join(ROOT_DIR, "server.py"), "--hash-password"],
                             input="s3cret-pw\ns3cret-pw\n", capture_output=True, text=True, timeout=60)
    digest = next(word for word in printed.stdout.split() if word.startswith("pbkdf2_sha256$"))
    path = write(tmp_path, f"USERS\n    ops:{digest}:1000:\n")
    assert load_config(path, env={}).USERS == [f"ops:{digest}:1000:"]
    with Server(str(tmp_path / "srv"), users=[f"ops:{digest}:1000:"], udp=False) as srv:
        assert srv.login("ops", "s3cret-pw", challenge=False) is not None
        assert srv.login("ops", "wrong", challenge=False) is None


def test_unknown_variable_is_an_error(tmp_path):
    path = write(tmp_path, "LOG_DIR $NO_SUCH_VARIABLE_HERE/x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "LOG_DIR" in str(info.value) and "NO_SUCH_VARIABLE_HERE" in str(info.value)


def test_environment_overrides(tmp_path):
    path = write(tmp_path, "HTTP_PORT 8338\nUSE_HEURISTICS true\nUSERS\n    a:1:0:\n")
    env = {"MALTRAIL_HTTP_PORT": "9999", "MALTRAIL_USE_HEURISTICS": "false",
           "MALTRAIL_USERS": "x:1:0:\ny:2:0:", "MALTRAIL_CAPTURE_WORKERS": "4"}
    config = load_config(path, env=env)
    assert config.HTTP_PORT == 9999
    assert config.USE_HEURISTICS is False
    assert config.USERS == ["x:1:0:", "y:2:0:"]
    assert config.CAPTURE_WORKERS == 4


def test_sizes(tmp_path):
    path = write(tmp_path, "CAPTURE_BUFFER 1%\nCAPTURE_BUFFER_SIZE 512kB\nFEED_MAX_SIZE 2MB\n")
    config = load_config(path, env={})
    assert config.CAPTURE_BUFFER_SIZE == 512 * 1024
    assert config.FEED_MAX_SIZE == 2 << 20
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert abs(config.CAPTURE_BUFFER - total // 100) <= 1


BAD_VALUES = [
    ("HTTP_PORT", "abc"), ("HTTP_PORT", "70000"), ("USE_HEURISTICS", "maybe"), ("CAPTURE_BUFFER", "lots"),
    ("CAPTURE_WORKERS", "0"), ("IGNORE_EVENTS_REGEX", "(unclosed"), ("LOG_SERVER", "nohostport"),
    ("EVENT_THROTTLE_MODE", "sometimes"), ("UPDATE_PERIOD", "ten"),
]


@pytest.mark.parametrize("key,value", BAD_VALUES)
def test_bad_values_name_key_and_value(tmp_path, key, value):
    path = write(tmp_path, f"{key} {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert key in text and value in text and "\n" not in text


def test_udp_address_and_port_together(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "UDP_ADDRESS 0.0.0.0\n"), env={})
    assert "UDP_PORT" in str(info.value)


def test_indented_line_outside_array(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "HTTP_PORT 1\n    stray\n"), env={})
    assert "line 2" in str(info.value)


# --- the real CLIs -----------------------------------------------------------------------------------

CLI_CASES = [("HTTP_PORT", "abc"), ("USE_HEURISTICS", "maybe"), ("CAPTURE_WORKERS", "0")]


@pytest.mark.parametrize("script", ["sensor.py", "server.py"])
@pytest.mark.parametrize("key,value", CLI_CASES)
def test_cli_bad_value_one_line_exit_2(tmp_path, script, key, value):
    path = os.path.join(ROOT_DIR, script)
    if not os.path.exists(path):
        pytest.skip(f"{script} does not exist yet")
    conf = write(tmp_path, f"LOG_DIR {tmp_path}/log\n{key} {value}\n")
    proc = subprocess.run([sys.executable, path, "-c", conf], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert key in lines[0] and value in lines[0]


@pytest.mark.parametrize("script", ["sensor.py", "server.py"])
def test_cli_bad_value_from_environment_exit_2(tmp_path, script):
    path = os.path.join(ROOT_DIR, script)
    if not os.path.exists(path):
        pytest.skip(f"{script} does not exist yet")
    env = dict(os.environ, MALTRAIL_HTTP_PORT="not-a-port", MALTRAIL_LOG_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=60, env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "HTTP_PORT" in proc.stderr and "not-a-port" in proc.stderr
