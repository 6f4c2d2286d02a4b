"""The ledger of processed inputs and the month plan it drives (no Spark)."""

from __future__ import annotations

from retail_pipeline.ledger import Ledger, SourceEntry, canonical_uri, source_id
from retail_pipeline.rewrite import plan_months

DAY1, DAY2, OTHER = "file:///in/day1.csv", "file:///in/day2.csv", "file:///resent/day1.csv"


def entry(source: str, months: dict[str, int]) -> SourceEntry:
    published = sum(months.values())
    return SourceEntry(source, 10, 1, "sha256:00", "run-1", published + 1, published, 1, 0, months)


class MemoryStore:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def exists(self, path: str) -> bool:
        return path in self.files

    def read_text(self, path: str) -> str:
        return self.files[path]


def test_a_ledger_reads_back_what_it_wrote() -> None:
    ledger = Ledger().with_run([entry(DAY1, {"2010-12": 5}), entry(DAY2, {"2010-12": 3, "2011-1": 2})])
    store = MemoryStore()
    store.files["/out/_ledger.json"] = ledger.to_json()
    assert Ledger.read(store, "/out") == ledger
    assert Ledger.read(MemoryStore(), "/out") == Ledger()


def test_a_run_replaces_its_sources_entries_and_keeps_the_others() -> None:
    ledger = Ledger().with_run([entry(DAY1, {"2010-12": 5}), entry(DAY2, {"2010-12": 3})])
    rerun = ledger.with_run([entry(DAY2, {"2011-1": 4})])
    assert rerun.sources[DAY1] == ledger.sources[DAY1]
    assert rerun.sources[DAY2].months == {"2011-1": 4}
    assert rerun.months_of([DAY2]) == {(2011, 1)}
    assert rerun.lines_kept((2010, 12), replaced=[DAY2]) == 5


def test_the_month_plan_moves_merges_and_removes() -> None:
    ledger = Ledger().with_run(
        [entry(DAY1, {"2010-12": 5}), entry(DAY2, {"2010-12": 3, "2011-2": 7}), entry(OTHER, {"2011-3": 1})]
    )
    # day2 re-delivered: its December lines stay in December, February moved to January.
    plan = plan_months(ledger, sources=[DAY2], staged=[(2010, 12), (2011, 1)])
    assert plan.merged == ((2010, 12),)  # day1's 5 lines are kept there
    assert plan.kept_lines == {(2010, 12): 5}
    assert plan.moved == ((2011, 1),)  # nobody else has January
    assert plan.removed == ((2011, 2),)  # day2 left February, nobody else is there
    assert plan.written == ((2010, 12), (2011, 1))


def test_a_first_run_moves_every_month() -> None:
    plan = plan_months(Ledger(), sources=[DAY1], staged=[(2010, 12), (2011, 1)])
    assert plan.moved == ((2010, 12), (2011, 1)) and plan.merged == () and plan.removed == ()


def test_same_name_in_two_folders_is_two_sources() -> None:
    assert source_id(DAY1) != source_id(OTHER)
    assert len(source_id(DAY1)) == 16 and source_id(DAY1) == source_id(DAY1)


def test_local_uris_have_one_spelling() -> None:
    assert (
        canonical_uri("file:/data/a%20b.csv")
        == canonical_uri("file:///data/a%20b.csv")
        == ("file:///data/a%20b.csv")
    )
    assert canonical_uri("s3://bucket/incoming/a.csv") == "s3://bucket/incoming/a.csv"
