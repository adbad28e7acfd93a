"""Regenerate the golden captures in fixtures/mysql/ from the local MariaDB and real clients.

Run: ``python tests/protocol/mysql/make_fixtures.py`` (needs MariaDB at 127.0.0.1:3306, root
without password, database ``test``; PyMySQL, mysql-connector-python and ``/usr/bin/mysql``).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import subprocess
import sys
from pathlib import Path

import mysql.connector
import pymysql
from pymysql.constants import CLIENT

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


from tests.protocol.mysql.capture import Recorder

USER = "wg_native"
PASSWORD = "native-pw"  # a throw-away local test account

# Every column of wg_types. mysql-connector-python 9.x (pure) fails to parse these binary rows
# (IndexError in its own parser); the capture is still complete and our decoder reads it.
PREPARED_SELECT = (
    "SELECT id, tiny, small, med, big, fl, db, dec1, d, dt, ts, y, vc, ch, tx, bl, bits, en,"
    " js, nul, t FROM wg_types"
    " WHERE id >= ? AND vc <> ? ORDER BY id"
)

SETUP = [
    f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED VIA mysql_native_password "
    f"USING PASSWORD('{PASSWORD}')",
    f"GRANT ALL ON test.* TO '{USER}'@'%'",
    "DROP TABLE IF EXISTS test.wg_types",
    """CREATE TABLE test.wg_types (
        id INT PRIMARY KEY, tiny TINYINT, small SMALLINT UNSIGNED, med MEDIUMINT,
        big BIGINT, fl FLOAT, db DOUBLE, dec1 DECIMAL(10,3), d DATE, dt DATETIME(6),
        ts TIMESTAMP NULL, t TIME(3), y YEAR, vc VARCHAR(50), ch CHAR(5), tx TEXT, bl BLOB,
        bits BIT(8), en ENUM('a','b'), js JSON, nul VARCHAR(5) NULL)""",
    """INSERT INTO test.wg_types VALUES
        (1, -128, 65535, -8388608, -9223372036854775808, 1.5, -2.25, '-1234567.891',
         '2024-02-29', '2024-02-29 13:14:15.123456', '2024-01-01 00:00:00', '-838:59:58.999',
         2024, 'alice@example.com', 'ab', 'long text', x'00ff10', b'10101010', 'b',
         '{"k": [1, 2]}', NULL),
        (2, 127, 0, 8388607, 9223372036854775807, -0.0, 1e300, '0.000', '1000-01-01',
         '2024-03-01 00:00:00', NULL, '00:00:00', 1901, '', '', '', '', b'0', 'a', 'null', 'x'),
        (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         'Bob 555-0100', NULL, NULL, NULL, NULL, NULL, NULL, NULL)""",
    "DROP PROCEDURE IF EXISTS test.wg_proc",
    """CREATE PROCEDURE test.wg_proc() BEGIN
        SELECT id, vc FROM test.wg_types WHERE id < 3 ORDER BY id; SELECT 42 AS answer; END""",
]


def setup() -> None:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test")
    with conn.cursor() as cur:
        for statement in SETUP:
            cur.execute(statement)
    conn.commit()
    conn.close()


def version() -> str:
    conn = pymysql.connect(host="127.0.0.1", user="root", password="")
    server = conn.get_server_info()
    conn.close()
    return str(server)


def pymysql_session(server: str) -> None:
    with Recorder() as rec:
        conn = pymysql.connect(
            host="127.0.0.1", port=rec.port, user=USER, password=PASSWORD, database="test"
        )
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM wg_types ORDER BY id")
            cur.fetchall()
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute("SELECT * FROM no_such_table")
            cur.execute("UPDATE wg_types SET nul = nul WHERE id = 1")
        conn.close()
    rec.save("pymysql_session", client=f"PyMySQL {pymysql.__version__}", server=server)


def pymysql_multi(server: str) -> None:
    with Recorder() as rec:
        conn = pymysql.connect(
            host="127.0.0.1",
            port=rec.port,
            user=USER,
            password=PASSWORD,
            database="test",
            client_flag=CLIENT.MULTI_STATEMENTS,
        )
        with conn.cursor() as cur:
            cur.execute("SELECT 1 AS a; SELECT 'x' AS b, NULL AS c; DO 1")
            while cur.nextset():
                pass
            cur.execute("CALL wg_proc()")
            while cur.nextset():
                pass
        conn.close()
    rec.save("pymysql_multi", client=f"PyMySQL {pymysql.__version__}", server=server)


def _connector(port: int, **options: str) -> mysql.connector.MySQLConnection:
    return mysql.connector.connect(
        **options,
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        database="test",
        use_pure=True,
        ssl_disabled=True,
    )


def connector_prepared(server: str) -> None:
    client = f"mysql-connector-python {mysql.connector.__version__} (pure)"
    with Recorder() as rec:
        conn = _connector(rec.port)
        cur = conn.cursor(prepared=True)
        cur.execute(PREPARED_SELECT, (1, "zz"))
        # the client's own row parser fails (see PREPARED_SELECT); the captured bytes are whole
        with contextlib.suppress(IndexError):
            cur.fetchall()
        conn.close()
    rec.save("connector_prepared_rows", client=client, server=server)
    with Recorder() as rec:
        # starting with caching_sha2_password makes MariaDB answer with an auth switch
        conn = _connector(rec.port, auth_plugin="caching_sha2_password")
        cur = conn.cursor(prepared=True)
        cur.execute(
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?",
            (
                -7,
                2.5,
                "héllo",
                b"\x00\x01",
                datetime.datetime(2024, 5, 6, 7, 8, 9, 10),
                datetime.date(2024, 5, 6),
                datetime.timedelta(hours=-1, seconds=30),
                decimal.Decimal("12.340"),
                None,
            ),
        )
        cur.fetchall()
        cur.execute("SELECT ?, ?", (1, "second execute"))
        cur.fetchall()
        cur.close()
        conn.close()
    rec.save("connector_prepared_params", client=client, server=server)


def mysql_cli(server: str) -> None:
    with Recorder() as rec:
        subprocess.run(
            [
                "/usr/bin/mysql",
                "-h127.0.0.1",
                f"-P{rec.port}",
                f"-u{USER}",
                f"-p{PASSWORD}",
                "--skip-ssl",
                "test",
                "-e",
                "SELECT id, vc, dt FROM wg_types ORDER BY id; SELECT @@version_comment",
            ],
            check=True,
            capture_output=True,
        )
    cli = subprocess.run(
        ["/usr/bin/mysql", "--version"], check=True, capture_output=True, text=True
    )
    rec.save("mysql_cli", client=cli.stdout.strip(), server=server)


def main() -> None:
    setup()
    server = version()
    pymysql_session(server)
    pymysql_multi(server)
    connector_prepared(server)
    mysql_cli(server)


if __name__ == "__main__":
    main()
