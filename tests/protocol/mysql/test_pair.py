"""Client/server pairs over real sockets.

* ``UpstreamSide`` logs in to the real MariaDB and runs commands, the responses classified by
  ``ResponseTracker`` through the relay loop.
* ``ServerSide`` faces real clients (PyMySQL, the ``mysql`` CLI) in a one-connection gateway that
  takes the token by the clear-password switch and relays to MariaDB.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.mysql.commands import (
    ComFieldList,
    ComInitDb,
    ComQuery,
    ComStmtExecute,
    ComStmtPrepare,
    SimpleCommand,
    StatementCommand,
)
from gateway.mysql.connection import (
    NEED_DATA,
    CommandReceived,
    LoginFailed,
    LoginRequested,
    LoginSucceeded,
    ServerGreeting,
    TLSRequested,
    UpstreamSide,
)
from gateway.mysql.constants import (
    GATEWAY_CAPABILITIES,
    Capability,
    ColumnType,
    Command,
    CursorType,
    ServerStatus,
    SessionTrackType,
)
from gateway.mysql.framing import Deframer
from gateway.mysql.rows import decode_binary_row, decode_text_row
from gateway.mysql.tracker import ResponseTracker
from tests.protocol.mysql.relay import ResponseRelay, serve_one

pytestmark = [pytest.mark.mariadb, pytest.mark.timeout(60)]

MARIADB = ("127.0.0.1", 3306)
USER = "wg_native"
PASSWORD = b"native-pw"
TOKEN = b"eyJhbGciOiJSUzI1NiJ9." + b"x" * 1000 + b".sig"


@pytest.fixture(scope="module", autouse=True)
def accounts() -> None:
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", database="test")
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED VIA mysql_native_password "
            f"USING PASSWORD('{PASSWORD.decode()}')"
        )
        cur.execute(f"GRANT ALL ON test.* TO '{USER}'@'%'")
        cur.execute("CREATE TABLE IF NOT EXISTS test.wg_live (id INT PRIMARY KEY, email TEXT)")
    conn.commit()
    conn.close()


def pump(up: UpstreamSide, sock: socket.socket) -> object:
    while True:
        event = up.next_event()
        out = up.data_to_send()
        if out:
            sock.sendall(out)
        if event is not NEED_DATA:
            return event
        up.receive_data(sock.recv(65536))


@pytest.fixture
def upstream() -> Iterator[tuple[UpstreamSide, socket.socket, LoginSucceeded]]:
    sock = socket.create_connection(MARIADB)
    up = UpstreamSide(username=USER, password=PASSWORD)
    greeting = pump(up, sock)
    assert isinstance(greeting, ServerGreeting)
    up.login(capabilities=GATEWAY_CAPABILITIES, database="test", attrs=(("_client", "wardgate"),))
    result = pump(up, sock)
    assert isinstance(result, LoginSucceeded), result
    try:
        yield up, sock, result
    finally:
        sock.close()


def run(up: UpstreamSide, sock: socket.socket, payload: bytes) -> tuple[ResponseTracker, bytes]:
    """Send a command, relay its response into a buffer; returns the tracker and the bytes."""
    tracker = up.start_command(payload)
    sock.sendall(up.data_to_send())
    relay = ResponseRelay(tracker)
    out = bytearray()
    while not tracker.complete:
        data = sock.recv(7000)  # small reads: packets straddle buffers
        assert data
        out += relay.feed(data)
    assert not relay.held
    return tracker, bytes(out)


def test_upstream_login_and_text_result_set(upstream) -> None:
    up, sock, login = upstream
    assert login.capabilities & Capability.CLIENT_DEPRECATE_EOF
    query = ComQuery(query=b"SELECT seq, CONCAT('row', seq) FROM seq_1_to_5000").encode()
    tracker, data = run(up, sock, query)
    assert tracker.error is None
    assert tracker.rows == 5000
    assert [c.name for c in tracker.columns] == [b"seq", b"CONCAT('row', seq)"]
    deframer = Deframer()
    deframer.feed(data)
    payloads = []
    while (got := deframer.next_payload()) is not None:
        payloads.append(got[0])
    assert len(payloads) == 1 + 2 + 5000 + 1  # count, columns, rows, OK (no EOF packets)
    assert decode_text_row(payloads[3 + 4999], 2) == [b"5000", b"row5000"]


def test_upstream_multi_statement_error_and_status_commands(upstream) -> None:
    up, sock, _ = upstream
    tracker, _ = run(up, sock, ComQuery(query=b"SELECT 1; SELECT 2, 3; DO 1").encode())
    assert tracker.result_sets == 2
    assert tracker.rows == 2
    tracker, _ = run(up, sock, ComQuery(query=b"SELECT * FROM no_such_table").encode())
    assert tracker.error is not None
    assert tracker.error.error_code == 1146
    tracker, _ = run(up, sock, ComInitDb(schema=b"test").encode())
    assert tracker.last_ok is not None
    changes = dict(tracker.last_ok.session_changes())
    assert SessionTrackType.SESSION_TRACK_SCHEMA in changes
    assert tracker.last_ok.changed_schema() == b"test"
    tracker, _ = run(up, sock, ComQuery(query=b"SET SESSION time_zone = '+01:00'").encode())
    assert tracker.last_ok is not None
    assert tracker.last_ok.changed_variables().get(b"time_zone") == b"+01:00"
    tracker, _ = run(up, sock, SimpleCommand(command=Command.COM_PING).encode())
    assert tracker.error is None
    tracker, data = run(up, sock, SimpleCommand(command=Command.COM_STATISTICS).encode())
    assert b"Uptime" in data
    tracker, _ = run(up, sock, ComFieldList(table=b"wg_live").encode())
    assert [c.name for c in tracker.columns] == [b"id", b"email"]
    assert all(c.has_default_values for c in tracker.columns)
    assert all(c.encode() for c in tracker.columns)


def test_upstream_prepared_statement_with_cursor(upstream) -> None:
    up, sock, _ = upstream
    prepare = ComStmtPrepare(query=b"SELECT seq, seq * 1.5 FROM seq_1_to_10 WHERE seq > ?")
    tracker, _ = run(up, sock, prepare.encode())
    ok = tracker.prepare_ok
    assert ok is not None
    assert (ok.num_params, ok.num_columns) == (1, 2)
    execute = ComStmtExecute(
        statement_id=ok.statement_id,
        flags=CursorType.CURSOR_TYPE_READ_ONLY,
        param_types=((ColumnType.MYSQL_TYPE_LONGLONG, False),),
        values=(3,),
    )
    tracker, _ = run(up, sock, execute.encode())
    assert tracker.error is None
    assert tracker.rows == 0
    assert tracker.status_flags & ServerStatus.SERVER_STATUS_CURSOR_EXISTS
    columns = tracker.binary_row_columns()
    fetched = []
    while True:
        fetch = StatementCommand(
            command=Command.COM_STMT_FETCH, statement_id=ok.statement_id, num_rows=4
        )
        tracker, data = run(up, sock, fetch.encode())
        deframer = Deframer()
        deframer.feed(data)
        while (got := deframer.next_payload()) is not None:
            if got[0][0] == 0x00:
                fetched.append(decode_binary_row(got[0], columns))
        if tracker.status_flags & ServerStatus.SERVER_STATUS_LAST_ROW_SENT:
            break
    assert [row[0] for row in fetched] == [4, 5, 6, 7, 8, 9, 10]
    assert fetched[0][1] == b"6.0"
    close = StatementCommand(command=Command.COM_STMT_CLOSE, statement_id=ok.statement_id)
    tracker, _ = run(up, sock, close.encode())
    assert tracker.complete
    tracker, _ = run(up, sock, SimpleCommand(command=Command.COM_PING).encode())
    assert tracker.error is None


def test_upstream_wrong_password_fails() -> None:
    with socket.create_connection(MARIADB) as sock:
        up = UpstreamSide(username=USER, password=b"wrong")
        assert isinstance(pump(up, sock), ServerGreeting)
        up.login(capabilities=GATEWAY_CAPABILITIES)
        result = pump(up, sock)
        assert isinstance(result, LoginFailed)
        assert result.error.error_code == 1045


def start_gateway(
    tls: ssl.SSLContext | None = None,
) -> tuple[int, list[object], threading.Thread, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    log: list[object] = []
    thread = threading.Thread(
        target=serve_one,
        args=(listener,),
        kwargs={
            "upstream_addr": MARIADB,
            "check_token": lambda token: token == TOKEN,
            "upstream_user": USER,
            "upstream_password": PASSWORD,
            "log": log,
            "tls": tls,
        },
        daemon=True,
    )
    thread.start()
    return listener.getsockname()[1], log, thread, listener


@pytest.fixture
def gateway() -> Iterator[tuple[int, list[object]]]:
    port, log, thread, listener = start_gateway()
    try:
        yield port, log
    finally:
        thread.join(timeout=20)
        listener.close()
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wardgate test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_gateway(certificate: tuple[Path, Path]) -> Iterator[tuple[int, list[object], Path]]:
    cert_path, key_path = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    port, log, thread, listener = start_gateway(context)
    try:
        yield port, log, cert_path
    finally:
        thread.join(timeout=20)
        listener.close()
    assert not thread.is_alive()


def test_pymysql_over_tls(tls_gateway) -> None:
    port, log, cert_path = tls_gateway
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="agent",
        password=TOKEN.decode(),
        ssl={"ca": str(cert_path)},
    )
    with conn.cursor() as cur:
        cur.execute("SELECT seq FROM test.seq_1_to_2000")
        assert len(cur.fetchall()) == 2000
    conn.close()
    assert any(isinstance(e, TLSRequested) for e in log)
    login = next(e for e in log if isinstance(e, LoginRequested))
    assert login.tls
    assert login.password == TOKEN


def test_mysql_connector_over_tls(tls_gateway) -> None:
    """mysql-connector-python sends a clear password only over TLS: the gateway's TLS."""
    port, log, cert_path = tls_gateway
    conn = mysql.connector.connect(
        host="127.0.0.1",
        port=port,
        user="agent",
        password=TOKEN.decode(),
        ssl_ca=str(cert_path),
        use_pure=True,
    )
    cur = conn.cursor()
    cur.execute("SELECT CONCAT('hello ', seq) FROM test.seq_1_to_3")
    assert cur.fetchall() == [("hello 1",), ("hello 2",), ("hello 3",)]
    cur.close()
    conn.close()
    login = next(e for e in log if isinstance(e, LoginRequested))
    assert login.tls
    assert login.password == TOKEN


def test_plain_text_refused_when_gateway_has_tls(tls_gateway) -> None:
    port, log, _ = tls_gateway
    with pytest.raises(pymysql.err.OperationalError) as err:
        pymysql.connect(
            host="127.0.0.1", port=port, user="agent", password=TOKEN.decode(), ssl_disabled=True
        )
    assert err.value.args[0] == 1045
    assert not any(isinstance(e, LoginRequested) for e in log)


def test_pymysql_through_server_side(gateway) -> None:
    port, log = gateway
    conn = pymysql.connect(
        host="127.0.0.1", port=port, user="agent", password=TOKEN.decode(), database="test"
    )
    assert conn.get_server_info().startswith("5.5.5-10.11")
    with conn.cursor() as cur:
        cur.execute("SELECT seq, REPEAT('x', seq) FROM seq_1_to_300")
        rows = cur.fetchall()
        assert len(rows) == 300
        assert rows[-1][1] == "x" * 300
        with pytest.raises(pymysql.err.ProgrammingError):
            cur.execute("SELECT * FROM no_such_table")
        cur.execute("SELECT 'still usable'")
        assert cur.fetchone() == ("still usable",)
    conn.close()
    login = next(e for e in log if isinstance(e, LoginRequested))
    assert login.username == "agent"
    assert login.password == TOKEN
    assert login.switched
    assert login.database == "test"
    assert "password=" not in repr(login)
    assert "x" * 100 not in repr(login)
    commands = [e for e in log if isinstance(e, CommandReceived)]
    assert any(
        isinstance(c.packet, ComQuery) and b"seq_1_to_300" in c.packet.query for c in commands
    )


def test_pymysql_with_bad_token_is_refused(gateway) -> None:
    port, _ = gateway
    with pytest.raises(pymysql.err.OperationalError) as err:
        pymysql.connect(host="127.0.0.1", port=port, user="agent", password="not-the-token")
    assert err.value.args[0] == 1045


@pytest.mark.skipif(shutil.which("mysql") is None, reason="needs the mysql CLI")
def test_mysql_cli_through_server_side(gateway) -> None:
    port, log = gateway
    result = subprocess.run(
        [
            "mysql",
            "-h127.0.0.1",
            f"-P{port}",
            "-uagent",
            f"-p{TOKEN.decode()}",
            "--skip-ssl",
            "-N",
            "-e",
            "SELECT 6 * 7; SELECT DATABASE()",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42", "NULL"]
    login = next(e for e in log if isinstance(e, LoginRequested))
    assert login.password == TOKEN
