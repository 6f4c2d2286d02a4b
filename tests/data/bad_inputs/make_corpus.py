"""(Re)create the bad-input corpus beside this script, byte for byte the same on every run.

    .venv/bin/python tests/data/bad_inputs/make_corpus.py

Each file is one kind of input that real exports and drops produce and that the batch job
once got wrong (issue #16); tests/integration/test_bad_inputs.py runs each through the job and
docs/bad_input.md says what each gets. Keep files small: a few lines per class.

| file | the class |
| --- | --- |
| cp1252_export.csv | an Excel "Save as CSV" export in Windows-1252 (é, £, €), not UTF-8 |
| cp1252_undefined_byte.csv | that export with one byte Windows-1252 leaves undefined (0x81) |
| utf8_one_bad_byte.csv | UTF-8 with one stray Latin-1 byte on one line |
| utf8_bad_bytes.csv | UTF-8 with bytes invalid in other ways (lone continuation byte, 0xFF, |
|  | overlong form, encoded surrogate, lead byte ending the line) |
| export.csv.gz, export.csv.bz2 | the good lines compressed (gzip without a time stamp) |
| two_members.csv.gz | two gzip files concatenated (`cat a.gz b.gz`), each with its header |
| cut.csv.gz | export.csv.gz cut short (an interrupted upload) |
| export.csv.zip, export.csv.zst | codecs Spark's text source does not read |
| control_in_keys.csv | NUL, ESC, VT, tab in InvoiceNo/StockCode; DEL in Country; NEL in CustomerID |
| control_in_description.csv | tab, BEL, NUL runs, CR in Description |
| header_only.csv | the header and nothing else, without a line break |
| empty_after_header.csv | the header, its line break, nothing else |
| empty.csv | 0 bytes |
| concatenated_bom.csv | two UTF-8 exports with byte-order marks concatenated (`cat a.csv b.csv`) |
| multiline_description.csv | quoted Descriptions holding line breaks (valid CSV) |
| multiline_description.csv.gz | the same, gzipped |
| multiline_cp1252.csv | a Windows-1252 export whose quoted Description holds a line break |
| stray_quote.csv | one stray unclosed quote, then more lines than a record may span, then a |
|  | multi-line record |
| misplaced_quote.csv | quoting that is not RFC 4180 (text after a closing quote, a quote in a |
|  | plain field, a space beside a quoted field), well-quoted lines, and two lines whose quotes |
|  | close over the line break but make a misquoted record |
| dates_out_of_range.csv | InvoiceDates before 2010-12-01, at the bounds, and years ahead |
| stale_crc/data.csv | a re-delivered file beside the Hadoop checksum of its old content |
"""

from __future__ import annotations

import bz2
import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
BOM = "\ufeff"
# Real lines of the data set (data/raw/online_retail_first_9999.csv), all published.
GOOD = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom",
    "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,12/1/2010 8:34,1.69,13047,United Kingdom",
    '536381,82567,"AIRLINE LOUNGE,METAL SIGN",2,12/1/2010 9:41,2.1,,United Kingdom',
]
# A line of each shape that Windows-1252 and UTF-8 spell differently.
ACCENTED = [
    "536370,22728,ALARM CLOCK BAKELIKE CAFÉ,24,12/1/2010 8:45,3.75,12583,France",
    "536370,22727,CRÈME BRÛLÉE SET,24,12/1/2010 8:45,3.75,12583,France",
    "536370,22726,GIFT VOUCHER £10,12,12/1/2010 8:45,10,12583,France",
    "536370,22725,EURO COIN PURSE €,12,12/1/2010 8:45,1.25,12583,France",
    "536370,22724,PÂTISSERIE TIN,12,12/1/2010 8:45,2.95,12583,Côte d'Ivoire",
]


def crlf(lines: list[str], *, bom: bool = False, last_break: bool = True) -> str:
    """Lines as an Excel export writes them: CRLF, optionally a byte-order mark."""
    text = "\r\n".join(lines) + ("\r\n" if last_break else "")
    return BOM + text if bom else text


def gzipped(data: bytes) -> bytes:
    """gzip without the time stamp and file name, so the bytes never change."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as stream:
        stream.write(data)
    return buffer.getvalue()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2011, 12, 9, 12, 0, 0)), data)
    return buffer.getvalue()


def zstd_frame(data: bytes) -> bytes:
    """One Zstandard frame holding `data` as a raw (uncompressed) block (RFC 8878): a real
    .zst file without a zstd library (256 <= len(data) < 65,792 bytes)."""
    assert 256 <= len(data) < 65_792
    descriptor = 0x60  # single segment, 2-byte frame content size
    block_header = (len(data) << 3) | 0b001  # last block, raw
    return (
        b"\x28\xb5\x2f\xfd"
        + bytes([descriptor])
        + struct.pack("<H", len(data) - 256)
        + block_header.to_bytes(3, "little")
        + data
    )


def hadoop_crc(data: bytes, bytes_per_checksum: int = 512) -> bytes:
    """A Hadoop ChecksumFileSystem side file (.<name>.crc): "crc\\0", the chunk size, and the
    CRC-32 of each chunk, big-endian."""
    sums = b"".join(
        struct.pack(">I", zlib.crc32(data[i : i + bytes_per_checksum]))
        for i in range(0, len(data), bytes_per_checksum)
    )
    return b"crc\x00" + struct.pack(">i", bytes_per_checksum) + sums


def corpus() -> dict[str, bytes]:
    """Each corpus file's path (relative to this folder) and bytes."""
    good = crlf([HEADER, *GOOD]).encode()
    export = crlf([HEADER, *GOOD, *ACCENTED]).encode()
    export_gz = gzipped(export)
    control_in_keys = [
        "5363\x0065,85123A,NUL IN INVOICE NO,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,85123A\x1b,ESC IN STOCK CODE,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,851\x0b23A,VERTICAL TAB IN STOCK CODE,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "\t536365,85123A,TAB BEFORE INVOICE NO,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,85123A,DEL IN COUNTRY,6,12/1/2010 8:26,2.55,17850,United\x7fKingdom",
        "536365,85123A,NEL IN CUSTOMER ID,6,12/1/2010 8:26,2.55,17850\x85,United Kingdom",
    ]
    control_in_description = [
        "536365,85123A,WHITE\tHANGING HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,71053,WHITE\x07\x07METAL\x00LANTERN\t,6,12/1/2010 8:26,3.39,17850,United Kingdom",
        '536365,84406B,"\tCREAM CUPID\x1f HEARTS",8,12/1/2010 8:26,2.75,17850,United Kingdom',
        "536365,84029G,\x00\x07,6,12/1/2010 8:26,3.39,17850,United Kingdom",
        "536365,84029E,RED WOOLLY\x85HOTTIE,6,12/1/2010 8:26,3.39,17850,United Kingdom",
    ]
    multiline = [
        GOOD[0],
        '536370,22728,"ALARM CLOCK\nBAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France',
        '536370,22727,"ALARM CLOCK\r\nBAKELIKE RED ",24,12/1/2010 8:45,3.75,12583,France',
        '536370,22726,"ALARM CLOCK\nBAKELIKE, GREEN\nAND BLUE",24,12/1/2010 8:45,3.75,12583,France',
        GOOD[1],
    ]
    multiline_cp1252 = [
        ACCENTED[0],
        '536370,22727,"CRÈME\r\nBRÛLÉE SET",24,12/1/2010 8:45,3.75,12583,Côte d\'Ivoire',
        ACCENTED[2],
    ]
    # The stray quote never closes within limits.RECORD_MAX_LINES (10) lines: it spoils its own.
    stray_quote = [
        '536365,85123A,"STRAY QUOTE,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        *[GOOD[0].replace("8:26", f"8:{minute}") for minute in range(10, 21)],
        '536370,22728,"ALARM CLOCK\nBAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France',
    ]
    # Quoting Spark's CSV parser and Python's csv read apart: `misplaced_quote`, and a record
    # over two lines that such quoting spoils (not joined: each line `unclosed_quote`).
    misplaced_quote = [
        GOOD[0],
        '536365,"85123A"X,TEXT AFTER A CLOSING QUOTE,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,22041,PHOTO FRAME 7" X 5" UNQUOTED,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A, "SPACE BEFORE A QUOTED FIELD",6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A,"SPACE AFTER A QUOTED FIELD" ,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A,""DOUBLED QUOTES OPEN A PLAIN FIELD,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536477,22041,"RECORD FRAME 7"" SINGLE SIZE ",48,12/1/2010 12:27,2.1,16210,United Kingdom',
        '536370,22728,"ALARM "X" CLOCK\r\nBAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France',
        GOOD[1],
    ]
    dates = [
        "536365,85123A,BEFORE THE EARLIEST,6,11/30/2010 23:59,2.55,17850,United Kingdom",
        "536365,85123A,BEFORE THE EARLIEST ISO,6,2010-11-30 23:59:59,2.55,17850,United Kingdom",
        "536365,85123A,AT THE EARLIEST,6,12/1/2010 0:00,2.55,17850,United Kingdom",
        "536365,85123A,THE LAST DAY OF THE DATA SET,6,2011-12-09 12:50:00,2.55,17850,United Kingdom",
        "536365,85123A,YEARS AHEAD,6,1/1/2099 0:00,2.55,17850,United Kingdom",
        "536365,85123A,THE LAST SECOND,6,9999-12-31 23:59:59,2.55,17850,United Kingdom",
        "536365,85123A,THE FIRST YEAR,6,1/1/1000 0:00,2.55,17850,United Kingdom",
    ]
    # Re-delivered with one quantity corrected: the same length, other bytes.
    re_delivered = good.replace(b",32,", b",33,")
    return {
        "cp1252_export.csv": export.decode().encode("cp1252"),
        "cp1252_undefined_byte.csv": (
            crlf([HEADER, *GOOD, *ACCENTED]).encode("cp1252")
            + "536370,22723,UNDEFINED \x81 BYTE,1,12/1/2010 8:45,1,12583,France\r\n".encode("latin-1")
        ),
        "utf8_one_bad_byte.csv": (
            crlf([HEADER, *ACCENTED[:3]]).encode()
            + "536370,22723,CAFÉ LATIN-1,1,12/1/2010 8:45,1,12583,France\r\n".encode("latin-1")
            + crlf(GOOD).encode()
        ),
        "utf8_bad_bytes.csv": (
            crlf([HEADER, *ACCENTED, *ACCENTED]).encode()
            + b"\r\n".join(
                [
                    b"536371,22720,LONE CONTINUATION \x80 BYTE,1,12/1/2010 8:45,1,12583,France",
                    b"536371,22721,BYTE \xff,1,12/1/2010 8:45,1,12583,France",
                    b"536371,22722\xbf,CONTINUATION BYTE IN A KEY,1,12/1/2010 8:45,1,12583,France",
                    b"536371,22723,OVERLONG \xc0\xaf SLASH,1,12/1/2010 8:45,1,12583,France",
                    b"536371,22724,ENCODED SURROGATE \xed\xa0\x80,1,12/1/2010 8:45,1,12583,France",
                    b"536371,22725,LEAD BYTE ENDING THE LINE,1,12/1/2010 8:45,1,12583,Franc\xc3",
                ]
            )
            + b"\r\n"
        ),
        "export.csv.gz": export_gz,
        "export.csv.bz2": bz2.compress(export, compresslevel=9),
        "two_members.csv.gz": export_gz + gzipped(good),
        "cut.csv.gz": export_gz[: len(export_gz) * 2 // 3],
        "export.csv.zip": zipped("export.csv", export),
        "export.csv.zst": zstd_frame(export),
        "control_in_keys.csv": crlf([HEADER, *control_in_keys, *GOOD]).encode(),
        "control_in_description.csv": crlf([HEADER, *control_in_description]).encode(),
        "header_only.csv": crlf([HEADER], last_break=False).encode(),
        "empty_after_header.csv": crlf([HEADER]).encode(),
        "empty.csv": b"",
        "concatenated_bom.csv": (
            crlf([HEADER, *GOOD[:2]], bom=True) + crlf([HEADER, *GOOD[2:]], bom=True)
        ).encode(),
        "multiline_description.csv": crlf([HEADER, *multiline]).encode(),
        "multiline_description.csv.gz": gzipped(crlf([HEADER, *multiline]).encode()),
        "multiline_cp1252.csv": crlf([HEADER, *multiline_cp1252]).encode("cp1252"),
        "stray_quote.csv": crlf([HEADER, *stray_quote]).encode(),
        "misplaced_quote.csv": crlf([HEADER, *misplaced_quote]).encode(),
        "dates_out_of_range.csv": crlf([HEADER, *dates]).encode(),
        "stale_crc/data.csv": re_delivered,
        # The checksum Hadoop's LocalFileSystem wrote beside the first delivery.
        "stale_crc/.data.csv.crc": hadoop_crc(good),
    }


def main() -> None:
    for name, data in corpus().items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{len(data):6d}  {name}")


if __name__ == "__main__":
    main()
