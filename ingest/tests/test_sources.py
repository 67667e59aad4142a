"""The streaming readers under the importers: no database."""

import json

import pytest

from ingest import sources
from ingest.exports import lastfm_date
from ingest.sources import Source, json_array, json_lines, natural_key
from mltasks.ml.data.parsing import DataFormatError

RECORDS = [
    {"ts": "2023-11-02T07:45:12Z", "name": "Cœur de pirate — «Comme des enfants»", "n": 12345},
    {"nested": {"list": [1, 2.5, None, True], "text": 'a "quoted" \\ line\nbreak'}},
    1234567890123,
    "日本語のタイトル",
    [],
]


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_json_array_is_decoded_element_by_element_across_chunk_boundaries(
    tmp_path, monkeypatch, chunk_bytes, indent
):
    monkeypatch.setattr(sources, "CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "history.json"
    text = json.dumps(RECORDS, indent=indent, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    elements = list(json_array(Source(path), description="test"))
    assert [value for _, value in elements] == RECORDS
    # each element is reported at the line it starts on
    expected_lines = [1, 1, 1, 1, 1] if indent is None else [2, 7, 18, 19, 20]
    assert [line for line, _ in elements] == expected_lines


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"not": "an array"}', "1: expected a JSON array of records"),
        ('[\n  {"a": 1},\n  {"b": }\n]', "3: invalid JSON: Expecting value"),
        ('[\n  {"a": 1}\n  {"b": 2}\n]', "3: expected ',' or ']' after a record, got '{'"),
        ('[\n  {"a": 1},\n', "3: invalid JSON: Expecting value"),
        ('[{"a": 1}', "1: the array is not closed"),
        ('[{"a": 1}]\n[]', "2: unexpected data after the JSON array"),
    ],
)
def test_malformed_json_array_names_the_line(tmp_path, monkeypatch, text, message):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4)
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError) as error:
        list(json_array(Source(path), description="test"))
    assert str(error.value) == f"{path}:{message}"


def test_empty_json_array_has_no_elements(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(" [ ] \n", encoding="utf-8")
    assert list(json_array(Source(path), description="test")) == []


def test_json_lines_skip_blank_lines_and_report_bad_ones(tmp_path):
    path = tmp_path / "listens.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"b": 2}\n{"c": \n')
    reader = json_lines(Source(path), description="test")
    assert next(reader) == (1, {"a": 1})
    assert next(reader) == (3, {"b": 2})
    with pytest.raises(DataFormatError, match=r"listens.jsonl:4: invalid JSON"):
        next(reader)


def test_text_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[\n"ok",\n"Beyoncé"\n]'.encode("latin-1"))
    with pytest.raises(DataFormatError) as error:
        list(json_array(Source(path), description="test"))
    assert str(error.value) == f"{path}:3: not UTF-8 text"


def test_natural_order_puts_10_after_9():
    names = ["listens/2021/10.jsonl", "listens/2021/9.jsonl", "listens/2020/12.jsonl"]
    assert sorted(names, key=natural_key) == [
        "listens/2020/12.jsonl",
        "listens/2021/9.jsonl",
        "listens/2021/10.jsonl",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("31 Jan 2021 12:34", (2021, 1, 31, 12, 34)),
        ("31 Jan 2021, 12:34", (2021, 1, 31, 12, 34)),
        ("01 Jan 2024, 00:01:00", (2024, 1, 1, 0, 1)),
        ("2022-01-01 00:00:00", (2022, 1, 1, 0, 0)),
    ],
)
def test_lastfm_dates(text, expected):
    moment = lastfm_date(text)
    assert (moment.year, moment.month, moment.day, moment.hour, moment.minute) == expected
    assert moment.utcoffset().total_seconds() == 0


def test_lastfm_date_with_unknown_month_is_refused():
    with pytest.raises(ValueError):
        lastfm_date("31 Foo 2021 12:34")
