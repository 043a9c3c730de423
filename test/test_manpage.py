"""Documentation/criu-lazy.8 stays in step with the command line.

The options the code accepts are read from options.c's getopt table (the
one source of truth: --help is hand-written and incomplete), and that
reading is checked against the binary itself.  Then:
  - every option of the table has an entry in the man page's OPTIONS
    section, with the same argument (or none);
  - every option the man page names anywhere is accepted by the binary
    (probed with a command that does not exist, so nothing runs: getopt's
    own complaint is the only rejection that counts);
  - per command, the man page SYNOPSIS and the binary's --help list the
    same options, and a command-specific OPTIONS entry ("dump: ...") is
    for exactly the commands whose synopsis lists it.
  - README's Usage shows, per command, only options that command's --help
    shows.
Fast: a few dozen runs of the binary's option parser, no root needed.
"""
import re
import subprocess

import pytest

from lib.paths import ROOT, TOOL

MAN = ROOT / "Documentation" / "criu-lazy.8"
OPTIONS_C = ROOT / "criu-lazy" / "options.c"
MAIN_C = ROOT / "criu-lazy" / "main.c"

# Options that apply to every command, documented once in OPTIONS.
GENERAL = {"o", "v", "W", "V", "h"}

GETOPT_ERRORS = ("unrecognized option", "invalid option", "requires an argument",
                 "doesn't allow an argument", "no command given")


def roff_text(s):
    """roff source -> plain text good enough to find option names in."""
    s = s.replace(r"\-", "-")
    s = re.sub(r"\\f[BIRP]", "", s)
    s = re.sub(r"^\.(B|I|BI|BR|IR|RB|RI|IB)\s", "", s, flags=re.M)
    return s.replace('"', "")


def options_in(text):
    """The long option names and short option letters named in plain text."""
    longs = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*[a-z0-9])", text))
    shorts = set(re.findall(r"(?<![\w-])-([A-Za-z])(?=[^\w-]|\d|$)", text, flags=re.M))
    return longs, shorts


class Table:
    """options.c's long_opts[] and optstring."""

    def __init__(self):
        src = OPTIONS_C.read_text()
        self.longs = {}     # name -> (has_arg, key)
        for name, has_arg, val in re.findall(
                r'\{\s*"([a-z0-9-]+)",\s*(no_argument|required_argument|optional_argument),'
                r'\s*NULL,\s*(\'.\'|\w+)\s*\}', src):
            self.longs[name] = (has_arg != "no_argument", val.strip("'"))
        optstring = re.search(r'getopt_long\([^"]*"([^"]+)"', src).group(1)
        self.shorts = {}    # letter -> has_arg
        for m in re.finditer(r"([A-Za-z])(:*)", optstring):
            self.shorts[m.group(1)] = bool(m.group(2))

    def key_of_long(self, name):
        return self.longs[name][1]

    def names_of(self, key):
        names = [f"--{n}" for n, (_, k) in self.longs.items() if k == key]
        return names + ([f"-{key}"] if key in self.shorts else [])

    def keys(self, longs, shorts):
        """Option names -> the keys getopt_long hands to the switch."""
        return {self.key_of_long(n) for n in longs if n in self.longs} | \
            {s for s in shorts if s in self.shorts}


@pytest.fixture(scope="module")
def table():
    t = Table()
    assert len(t.longs) >= 20 and "lazy-pages" in t.longs, "options.c table not read"
    return t


def commands():
    return re.findall(r'\{\s*"([a-z-]+)",\s*cr_\w+,', MAIN_C.read_text())


def man_sections():
    """{section name: roff text} of the man page."""
    parts = re.split(r"^\.SH\s+(.*)$", MAN.read_text(), flags=re.M)
    return {parts[i].strip('"'): parts[i + 1] for i in range(1, len(parts), 2)}


def options_entries():
    """OPTIONS: [(tag text, body text)], one per .TP."""
    entries = []
    for chunk in re.split(r"^\.TP\s*$", man_sections()["OPTIONS"], flags=re.M)[1:]:
        tag, _, body = chunk.strip("\n").partition("\n")
        entries.append((roff_text(tag), roff_text(body)))
    return entries


def entry_commands(body):
    """The commands an OPTIONS entry's text is for: its paragraphs start with
    "dump: ...", "lazy-pages, page-server, dump --lazy-pages: ..."; none named
    means the entry is for every command that lists the option."""
    cmds = "|".join(map(re.escape, commands()))
    lead = re.compile(rf"(?:^|; |\. )((?:(?:{cmds})(?: --[a-z-]+)*(?:, and |, | and )?)+):",
                      flags=re.M)
    named = set()
    for m in lead.finditer(body):
        named |= set(re.findall(rf"(?<![\w-])({cmds})(?![\w-])", m.group(1)))
    return named


def man_synopsis():
    """{command: plain text of its SYNOPSIS lines}."""
    out = {}
    for block in re.split(r"^\.br\s*$", man_sections()["SYNOPSIS"], flags=re.M):
        m = re.search(r"^\.B criu-lazy ([a-z-]+)\s*$", block, flags=re.M)
        if m:
            out[m.group(1)] = roff_text(block.replace(m.group(0), ""))
    return out


def help_synopsis():
    """{command: text of its usage lines} from the binary's own --help."""
    r = subprocess.run([str(TOOL), "--help"], capture_output=True, text=True, timeout=10)
    text = r.stdout + r.stderr
    assert r.returncode == 0 and "Usage:" in text, text
    tls = re.search(r"^TLS:(.*?)(?=^\S)", text, flags=re.M | re.S).group(1)
    out, cmd = {}, None
    for line in text.splitlines():
        m = re.match(r"  criu-lazy (\S+)(.*)", line)
        if m:
            cmd = m.group(1) if not m.group(1).startswith("-") else None
            if cmd:
                out[cmd] = m.group(2)
        elif cmd and line.startswith("    "):
            out[cmd] += line
        else:
            cmd = None
    return {c: t.replace("[TLS]", tls) for c, t in out.items()}


def accepted(table, name, short=False):
    """Does the binary's parser take the option?  (A non-command, so nothing runs.)"""
    has_arg = table.shorts.get(name) if short else table.longs.get(name, (None,))[0]
    if short:
        argv = [f"-{name}"] + (["1"] if has_arg else [])
    else:
        argv = [f"--{name}=1"] if has_arg else [f"--{name}"]
    r = subprocess.run([str(TOOL), *argv, "no-such-command"], capture_output=True,
                       text=True, timeout=10)
    errs = [e for e in GETOPT_ERRORS if e in r.stderr]
    return not errs, (argv, r.returncode, r.stderr.splitlines()[:1])


def test_table_matches_binary(table):
    """The table as read here is what the binary accepts (guards this reading)."""
    for name in table.longs:
        ok, why = accepted(table, name)
        assert ok, f"--{name} is in options.c but the binary rejects it: {why}"
    for letter in table.shorts:
        ok, why = accepted(table, letter, short=True)
        assert ok, f"-{letter} is in the optstring but the binary rejects it: {why}"
    ok, _ = accepted(table, "surely-not-an-option")
    assert not ok, "the probe cannot tell a rejected option"


def test_every_option_has_an_entry(table):
    tags = {}
    for tag, body in options_entries():
        longs, shorts = options_in(tag)
        for n in longs:
            tags[n] = tag
        for s in shorts:
            tags[f"-{s}"] = tag
    missing = [f"--{n}" for n in table.longs if n not in tags]
    missing += [f"-{s}" for s in table.shorts if f"-{s}" not in tags]
    assert not missing, f"criu-lazy.8 OPTIONS has no entry for {missing}"
    # The argument the entry shows (a word after the name) is the one getopt wants.
    wrong = []
    for n, (has_arg, _) in table.longs.items():
        m = re.search(rf"--{n}(?![\w-])( +[A-Za-z]|\[)?", tags[n])
        if bool(m.group(1)) != has_arg:
            wrong.append(f"--{n} ({'takes' if has_arg else 'takes no'} argument)")
    assert not wrong, f"criu-lazy.8 OPTIONS shows the wrong argument for {wrong}"


def test_every_documented_option_is_accepted(table):
    longs, shorts = options_in(roff_text(MAN.read_text()))
    # Names of other programs' options the page quotes (criu's, unshare's, ...).
    foreign = {"loginuid-immutable", "kill-child", "pid", "fork", "ipc", "noflush",
               "feature"} - set(table.longs)
    unknown = sorted(f"--{n}" for n in longs - foreign if not accepted(table, n)[0])
    assert not unknown, f"criu-lazy.8 documents options the binary rejects: {unknown}"
    synopsis_shorts = set()
    for text in man_synopsis().values():
        synopsis_shorts |= options_in(text)[1]
    for _, tag in [(0, t) for t, _ in options_entries()]:
        synopsis_shorts |= options_in(tag)[1]
    unknown = sorted(f"-{s}" for s in synopsis_shorts if not accepted(table, s, True)[0])
    assert not unknown, f"criu-lazy.8 documents options the binary rejects: {unknown}"


def test_commands_are_documented():
    man, usage = man_synopsis(), help_synopsis()
    for cmd in commands():
        assert cmd in man, f"criu-lazy.8 SYNOPSIS lacks the command {cmd}"
        assert cmd in usage, f"criu-lazy --help lacks the command {cmd}"
        assert re.search(rf"^\.TP\n\.B {cmd}$", man_sections()["COMMANDS"], flags=re.M), \
            f"criu-lazy.8 COMMANDS has no entry for {cmd}"


@pytest.mark.parametrize("cmd", commands())
def test_command_synopsis(table, cmd):
    """Per command: the man page and --help list the same options, every option
    of the table belongs to some command or is general, and the OPTIONS entry
    of a command-specific option names the command."""
    man = table.keys(*options_in(man_synopsis()[cmd])) - GENERAL
    usage = table.keys(*options_in(help_synopsis()[cmd])) - GENERAL

    def names(keys):
        return sorted(table.names_of(k)[0] for k in keys)
    assert man == usage, (f"{cmd}: only in criu-lazy.8 SYNOPSIS: {names(man - usage)}; "
                          f"only in --help: {names(usage - man)}")

    man_all = table.keys(*options_in(man_synopsis()[cmd]))
    for tag, body in options_entries():
        keys = table.keys(*options_in(tag))
        named = entry_commands(body)
        if keys & man and named and cmd not in named:
            pytest.fail(f"criu-lazy.8 OPTIONS entry '{tag.strip()}' is in the {cmd} "
                        f"synopsis but its text is only for {sorted(named)}")
        if cmd in named and not keys & man_all:
            pytest.fail(f"criu-lazy.8 OPTIONS entry '{tag.strip()}' says what it does "
                        f"for {cmd} but the {cmd} synopsis does not list it")


def test_every_option_belongs_somewhere(table):
    used = set(GENERAL)
    for cmd in commands():
        used |= table.keys(*options_in(man_synopsis()[cmd]))
    keys = {k for _, k in table.longs.values()} | set(table.shorts)
    orphans = sorted(table.names_of(k)[0] for k in keys - used)
    assert not orphans, f"options in no command's SYNOPSIS in criu-lazy.8: {orphans}"


def readme_usage():
    """{command: option text} of README's Usage block (comments left out)."""
    block = re.search(r"^## Usage\n(.*?)(?=^\S)", (ROOT / "README.md").read_text(),
                      flags=re.M | re.S).group(1)
    out, cmd = {}, None
    for line in block.splitlines():
        line = line.split("#")[0]
        m = re.match(r"\s+criu-lazy (\S+)(.*)", line)
        if m:
            cmd = m.group(1) if not m.group(1).startswith("-") else None
            if cmd:
                out[cmd] = out.get(cmd, "") + " " + m.group(2)
        elif cmd and line.strip():
            out[cmd] += " " + line
    return out


def test_readme_usage(table):
    """README's Usage shows a subset of each command's --help options."""
    usage, readme = help_synopsis(), readme_usage()
    assert set(readme) >= {"dump", "restore", "lazy-pages"}, "README Usage not read"
    for cmd, text in readme.items():
        assert cmd in usage, f"README Usage shows a command --help lacks: {cmd}"
        longs, shorts = options_in(text)
        rejected = sorted([f"--{n}" for n in longs if not accepted(table, n)[0]] +
                          [f"-{s}" for s in shorts if not accepted(table, s, True)[0]])
        assert not rejected, f"README Usage ({cmd}) shows options the binary rejects: {rejected}"
        extra = table.keys(longs, shorts) - GENERAL - table.keys(*options_in(usage[cmd]))
        assert not extra, (f"README Usage shows for {cmd} options its --help does not: "
                           f"{sorted(table.names_of(k)[0] for k in extra)}")
