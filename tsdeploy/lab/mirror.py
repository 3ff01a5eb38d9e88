"""Find the Debian mirror the control node's own apt sources use, so the lab never hard-codes one."""

from __future__ import annotations

from pathlib import Path

from tsdeploy.lab.system import LabError

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# Suites with these suffixes live on other archives (security) or only add updates; the base suite names a mirror.
_SECONDARY_SUFFIXES = ("-security", "-updates", "-backports", "-proposed-updates")


def _is_primary_suite(suite: str) -> bool:
    return not suite.endswith(_SECONDARY_SUFFIXES) and "/" not in suite


def parse_one_line(text: str) -> list[tuple[str, list[str]]]:
    """Parse one-line `deb URI SUITE COMPONENTS` sources into (uri, [suite]) pairs, ignoring deb-src."""
    entries = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options such as [signed-by=...] come before the URI
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            entries.append((words[0], [words[1]]))
    return entries


def parse_deb822(text: str) -> list[tuple[str, list[str]]]:
    """Parse deb822 `.sources` stanzas into (uri, suites) pairs for enabled `Types: deb` stanzas."""
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        entries.extend((uri, suites) for uri in fields.get("uris", "").split())
    return entries


def pick_mirror(entries: list[tuple[str, list[str]]]) -> str | None:
    """Return the first URI that serves a Debian base suite (e.g. `bookworm`), not security or updates."""
    for uri, suites in entries:
        if uri.startswith(("http://", "https://")) and any(_is_primary_suite(s) for s in suites):
            return uri.rstrip("/")
    return None


def machine_mirror(sources: tuple[Path, Path] = APT_SOURCES) -> str:
    """Read the machine's apt sources and return its Debian mirror; fail with the fix if there is none."""
    single, directory = sources
    entries: list[tuple[str, list[str]]] = []
    if single.is_file():
        entries += parse_one_line(single.read_text())
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix == ".list":
                entries += parse_one_line(path.read_text())
            elif path.suffix == ".sources":
                entries += parse_deb822(path.read_text())
    mirror = pick_mirror([e for e in entries if "debian" in e[0]]) or pick_mirror(entries)
    if mirror is None:
        raise LabError(
            f"no Debian mirror found in {single} or {directory}/*.list|*.sources: "
            "add a `deb http://MIRROR/debian SUITE main` source (the lab builds its hosts from it)"
        )
    return mirror
