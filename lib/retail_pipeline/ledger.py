"""The ledger of processed inputs: which source files the output holds lines of, and how many.

One JSON document, `<output>/_ledger.json`, published in the same journaled step as the data
it describes (see `publish`), so after a kill at any moment the two agree. Per source file
(its URI, as the curated `source_file` column spells it):

    size, modified (ms since the epoch), checksum    what the file was when it was processed
    run_id                                            the run that published its lines
    read, published, filtered, quarantined            where its lines went
    months {"2011-1": lines}                          the curated months holding its lines

The months tell a run which curated months it must rewrite (where its sources' earlier lines
are) and which months hold other sources' lines (to keep), without reading any data. When
months are published as versions through the catalog (`catalog`), `locations` names each
month's current folder: what a reader of raw paths reads, and what the next run rewrites.

No Spark here: the incremental selection and the warehouse side can use it anywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

LEDGER_FILE = "_ledger.json"
# A quarantine partition is named by a digest of its source's URI: two files of the same name
# in different folders are different sources. Spark computes the same (transforms.source_id).
SOURCE_ID_HEX_DIGITS = 16
VERSION = 1

Month = tuple[int, int]


class TextStore(Protocol):
    def exists(self, path: str) -> bool: ...
    def read_text(self, path: str) -> str: ...


def canonical_uri(uri: str) -> str:
    """One spelling per file: Hadoop writes a local file "file:/x" or "file:///x"."""
    return re.sub(r"^file:/+", "file:///", uri)


def source_id(uri: str) -> str:
    """The quarantine partition value of a source file."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:SOURCE_ID_HEX_DIGITS]


def month_key(month: Month) -> str:
    return f"{month[0]}-{month[1]}"


def parse_month(key: str) -> Month:
    year, month = key.split("-")
    return int(year), int(month)


@dataclass(frozen=True)
class SourceEntry:
    source: str
    size: int
    modified: int
    checksum: str | None
    run_id: str
    read: int
    published: int
    filtered: int
    quarantined: int
    months: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Ledger:
    sources: Mapping[str, SourceEntry] = field(default_factory=dict)
    locations: Mapping[str, str] = field(default_factory=dict)  # month key -> folder URI

    @classmethod
    def read(cls, fs: TextStore, output: str) -> Ledger:
        path = f"{output}/{LEDGER_FILE}"
        if not fs.exists(path):
            return cls()
        data: dict[str, Any] = json.loads(fs.read_text(path))
        entries = (SourceEntry(**entry) for entry in data["sources"])
        return cls({entry.source: entry for entry in entries}, dict(data.get("locations", {})))

    def to_json(self) -> str:
        entries = [asdict(self.sources[source]) for source in sorted(self.sources)]
        locations = dict(sorted(self.locations.items(), key=lambda item: parse_month(item[0])))
        return json.dumps({"version": VERSION, "sources": entries, "locations": locations}, indent=1)

    def location(self, month: Month) -> str | None:
        return self.locations.get(month_key(month))

    def months_of(self, sources: Iterable[str]) -> set[Month]:
        """The curated months holding lines of `sources`."""
        return {parse_month(key) for s in sources if s in self.sources for key in self.sources[s].months}

    def lines_kept(self, month: Month, *, replaced: Collection[str]) -> int:
        """Lines of `month` from sources other than `replaced`: what a rewrite keeps."""
        key = month_key(month)
        return sum(
            entry.months.get(key, 0) for source, entry in self.sources.items() if source not in replaced
        )

    def with_run(self, entries: Iterable[SourceEntry], locations: Mapping[Month, str | None] = {}) -> Ledger:
        """This ledger with the run's sources replaced by their new entries and its months'
        locations moved (None: the month is gone)."""
        moved = {**self.locations, **{month_key(m): loc for m, loc in locations.items() if loc is not None}}
        for month, location in locations.items():
            if location is None:
                moved.pop(month_key(month), None)
        return Ledger({**self.sources, **{entry.source: entry for entry in entries}}, moved)
