"""Names of the MySQL/MariaDB client/server protocol, spelled as the protocol documentation does.

Every wire constant the codec uses lives here so that no module carries a bare ``0x03``.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

HEADER_SIZE = 4
"""Bytes of a packet header: 3-byte payload length, 1-byte sequence id."""

MAX_PACKET_PAYLOAD = 0xFFFFFF
"""Largest payload of one physical packet; a longer payload continues in the next packet."""

SCRAMBLE_LENGTH = 20
"""Length of the nonce in HandshakeV10 (auth_plugin_data) used by the password plugins."""


class Command(IntEnum):
    """First byte of a command-phase packet sent by the client."""

    COM_SLEEP = 0x00
    COM_QUIT = 0x01
    COM_INIT_DB = 0x02
    COM_QUERY = 0x03
    COM_FIELD_LIST = 0x04
    COM_CREATE_DB = 0x05
    COM_DROP_DB = 0x06
    COM_REFRESH = 0x07
    COM_SHUTDOWN = 0x08
    COM_STATISTICS = 0x09
    COM_PROCESS_INFO = 0x0A
    COM_CONNECT = 0x0B
    COM_PROCESS_KILL = 0x0C
    COM_DEBUG = 0x0D
    COM_PING = 0x0E
    COM_TIME = 0x0F
    COM_DELAYED_INSERT = 0x10
    COM_CHANGE_USER = 0x11
    COM_BINLOG_DUMP = 0x12
    COM_TABLE_DUMP = 0x13
    COM_CONNECT_OUT = 0x14
    COM_REGISTER_SLAVE = 0x15
    COM_STMT_PREPARE = 0x16
    COM_STMT_EXECUTE = 0x17
    COM_STMT_SEND_LONG_DATA = 0x18
    COM_STMT_CLOSE = 0x19
    COM_STMT_RESET = 0x1A
    COM_SET_OPTION = 0x1B
    COM_STMT_FETCH = 0x1C
    COM_DAEMON = 0x1D
    COM_BINLOG_DUMP_GTID = 0x1E
    COM_RESET_CONNECTION = 0x1F
    COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB
    COM_MULTI = 0xFE  # MariaDB


class Capability(IntFlag):
    """Capability flags (the lower 32 bits exchanged in every handshake)."""

    CLIENT_LONG_PASSWORD = 1 << 0  # MariaDB calls this bit CLIENT_MYSQL
    CLIENT_FOUND_ROWS = 1 << 1
    CLIENT_LONG_FLAG = 1 << 2
    CLIENT_CONNECT_WITH_DB = 1 << 3
    CLIENT_NO_SCHEMA = 1 << 4
    CLIENT_COMPRESS = 1 << 5
    CLIENT_ODBC = 1 << 6
    CLIENT_LOCAL_FILES = 1 << 7
    CLIENT_IGNORE_SPACE = 1 << 8
    CLIENT_PROTOCOL_41 = 1 << 9
    CLIENT_INTERACTIVE = 1 << 10
    CLIENT_SSL = 1 << 11
    CLIENT_IGNORE_SIGPIPE = 1 << 12
    CLIENT_TRANSACTIONS = 1 << 13
    CLIENT_RESERVED = 1 << 14
    CLIENT_SECURE_CONNECTION = 1 << 15
    CLIENT_MULTI_STATEMENTS = 1 << 16
    CLIENT_MULTI_RESULTS = 1 << 17
    CLIENT_PS_MULTI_RESULTS = 1 << 18
    CLIENT_PLUGIN_AUTH = 1 << 19
    CLIENT_CONNECT_ATTRS = 1 << 20
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    CLIENT_SESSION_TRACK = 1 << 23
    CLIENT_DEPRECATE_EOF = 1 << 24
    CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
    CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    CLIENT_QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTHENTICATION = 1 << 28
    CLIENT_CAPABILITY_EXTENSION = 1 << 29
    CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
    CLIENT_REMEMBER_OPTIONS = 1 << 31


GATEWAY_CAPABILITIES = (
    Capability.CLIENT_LONG_PASSWORD
    | Capability.CLIENT_FOUND_ROWS
    | Capability.CLIENT_LONG_FLAG
    | Capability.CLIENT_CONNECT_WITH_DB
    | Capability.CLIENT_NO_SCHEMA
    | Capability.CLIENT_ODBC
    | Capability.CLIENT_IGNORE_SPACE
    | Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_INTERACTIVE
    | Capability.CLIENT_SSL
    | Capability.CLIENT_IGNORE_SIGPIPE
    | Capability.CLIENT_TRANSACTIONS
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_MULTI_STATEMENTS
    | Capability.CLIENT_MULTI_RESULTS
    | Capability.CLIENT_PS_MULTI_RESULTS
    | Capability.CLIENT_PLUGIN_AUTH
    | Capability.CLIENT_CONNECT_ATTRS
    | Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CLIENT_SESSION_TRACK
    | Capability.CLIENT_DEPRECATE_EOF
)
"""Everything the codec understands end to end. Deliberately absent: CLIENT_LOCAL_FILES (LOAD
DATA LOCAL lets a server read client files), CLIENT_COMPRESS / ZSTD (the relay reads plain
frames), CLIENT_OPTIONAL_RESULTSET_METADATA and CLIENT_QUERY_ATTRIBUTES (change packet layouts
the tracker and masker rely on). CLIENT_SSL is removed again by ServerSide when no TLS is set."""


class MariaDBCapability(IntFlag):
    """MariaDB's extended capabilities, carried in the last 4 reserved bytes of the handshakes
    when CLIENT_LONG_PASSWORD (CLIENT_MYSQL) is clear. The gateway never offers them."""

    MARIADB_CLIENT_PROGRESS = 1 << 0
    MARIADB_CLIENT_COM_MULTI = 1 << 1
    MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 2
    MARIADB_CLIENT_EXTENDED_METADATA = 1 << 3
    MARIADB_CLIENT_CACHE_METADATA = 1 << 4


class ServerStatus(IntFlag):
    """status_flags of OK and EOF packets and of HandshakeV10."""

    SERVER_STATUS_IN_TRANS = 1 << 0
    SERVER_STATUS_AUTOCOMMIT = 1 << 1
    SERVER_MORE_RESULTS_EXISTS = 1 << 3
    SERVER_STATUS_NO_GOOD_INDEX_USED = 1 << 4
    SERVER_STATUS_NO_INDEX_USED = 1 << 5
    SERVER_STATUS_CURSOR_EXISTS = 1 << 6
    SERVER_STATUS_LAST_ROW_SENT = 1 << 7
    SERVER_STATUS_DB_DROPPED = 1 << 8
    SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9
    SERVER_STATUS_METADATA_CHANGED = 1 << 10
    SERVER_QUERY_WAS_SLOW = 1 << 11
    SERVER_PS_OUT_PARAMS = 1 << 12
    SERVER_STATUS_IN_TRANS_READONLY = 1 << 13
    SERVER_SESSION_STATE_CHANGED = 1 << 14


class ColumnType(IntEnum):
    """Column and parameter types (enum_field_types)."""

    MYSQL_TYPE_DECIMAL = 0
    MYSQL_TYPE_TINY = 1
    MYSQL_TYPE_SHORT = 2
    MYSQL_TYPE_LONG = 3
    MYSQL_TYPE_FLOAT = 4
    MYSQL_TYPE_DOUBLE = 5
    MYSQL_TYPE_NULL = 6
    MYSQL_TYPE_TIMESTAMP = 7
    MYSQL_TYPE_LONGLONG = 8
    MYSQL_TYPE_INT24 = 9
    MYSQL_TYPE_DATE = 10
    MYSQL_TYPE_TIME = 11
    MYSQL_TYPE_DATETIME = 12
    MYSQL_TYPE_YEAR = 13
    MYSQL_TYPE_NEWDATE = 14
    MYSQL_TYPE_VARCHAR = 15
    MYSQL_TYPE_BIT = 16
    MYSQL_TYPE_TIMESTAMP2 = 17
    MYSQL_TYPE_DATETIME2 = 18
    MYSQL_TYPE_TIME2 = 19
    MYSQL_TYPE_VECTOR = 242
    MYSQL_TYPE_JSON = 245
    MYSQL_TYPE_NEWDECIMAL = 246
    MYSQL_TYPE_ENUM = 247
    MYSQL_TYPE_SET = 248
    MYSQL_TYPE_TINY_BLOB = 249
    MYSQL_TYPE_MEDIUM_BLOB = 250
    MYSQL_TYPE_LONG_BLOB = 251
    MYSQL_TYPE_BLOB = 252
    MYSQL_TYPE_VAR_STRING = 253
    MYSQL_TYPE_STRING = 254
    MYSQL_TYPE_GEOMETRY = 255


class ColumnFlag(IntFlag):
    """flags of ColumnDefinition41."""

    NOT_NULL_FLAG = 1 << 0
    PRI_KEY_FLAG = 1 << 1
    UNIQUE_KEY_FLAG = 1 << 2
    MULTIPLE_KEY_FLAG = 1 << 3
    BLOB_FLAG = 1 << 4
    UNSIGNED_FLAG = 1 << 5
    ZEROFILL_FLAG = 1 << 6
    BINARY_FLAG = 1 << 7
    ENUM_FLAG = 1 << 8
    AUTO_INCREMENT_FLAG = 1 << 9
    TIMESTAMP_FLAG = 1 << 10
    SET_FLAG = 1 << 11
    NO_DEFAULT_VALUE_FLAG = 1 << 12
    ON_UPDATE_NOW_FLAG = 1 << 13
    PART_KEY_FLAG = 1 << 14
    NUM_FLAG = 1 << 15


class CursorType(IntFlag):
    """flags byte of COM_STMT_EXECUTE."""

    CURSOR_TYPE_NO_CURSOR = 0
    CURSOR_TYPE_READ_ONLY = 1 << 0
    CURSOR_TYPE_FOR_UPDATE = 1 << 1
    CURSOR_TYPE_SCROLLABLE = 1 << 2
    PARAMETER_COUNT_AVAILABLE = 1 << 3  # MySQL 8 with CLIENT_QUERY_ATTRIBUTES


class SetOption(IntEnum):
    """Argument of COM_SET_OPTION."""

    MYSQL_OPTION_MULTI_STATEMENTS_ON = 0
    MYSQL_OPTION_MULTI_STATEMENTS_OFF = 1


class SessionTrackType(IntEnum):
    """Type byte of a session-state change in an OK packet (CLIENT_SESSION_TRACK)."""

    SESSION_TRACK_SYSTEM_VARIABLES = 0
    SESSION_TRACK_SCHEMA = 1
    SESSION_TRACK_STATE_CHANGE = 2
    SESSION_TRACK_GTIDS = 3
    SESSION_TRACK_TRANSACTION_CHARACTERISTICS = 4
    SESSION_TRACK_TRANSACTION_STATE = 5


class Charset(IntEnum):
    """Collation ids a gateway meets in handshakes (the byte is a collation, named a charset)."""

    LATIN1_SWEDISH_CI = 8
    UTF8MB3_GENERAL_CI = 33
    UTF8MB4_GENERAL_CI = 45
    UTF8MB4_BIN = 46
    BINARY = 63
    UTF8MB4_UNICODE_CI = 224
    UTF8MB4_0900_AI_CI = 255


class AuthPlugin:
    """Authentication plugin names as they appear on the wire (names, not secrets)."""

    MYSQL_NATIVE_PASSWORD = "mysql_native_password"  # noqa: S105
    CACHING_SHA2_PASSWORD = "caching_sha2_password"  # noqa: S105
    SHA256_PASSWORD = "sha256_password"  # noqa: S105
    MYSQL_CLEAR_PASSWORD = "mysql_clear_password"  # noqa: S105
    CLIENT_ED25519 = "client_ed25519"


class ErrorCode(IntEnum):
    """Server (ER_*) and client (CR_*) error numbers the gateway answers with or meets."""

    ER_DBACCESS_DENIED_ERROR = 1044
    ER_HANDSHAKE_ERROR = 1043
    ER_ACCESS_DENIED_ERROR = 1045
    ER_UNKNOWN_COM_ERROR = 1047
    ER_NOT_ALLOWED_COMMAND = 1148
    ER_NET_PACKET_TOO_LARGE = 1153
    ER_NET_PACKETS_OUT_OF_ORDER = 1156
    ER_NET_READ_ERROR = 1158
    ER_SPECIFIC_ACCESS_DENIED_ERROR = 1227
    ER_UNKNOWN_STMT_HANDLER = 1243
    ER_NOT_SUPPORTED_AUTH_MODE = 1251
    ER_OPTION_PREVENTS_STATEMENT = 1290
    ER_QUERY_INTERRUPTED = 1317
    ER_MALFORMED_PACKET = 1835
    CR_UNKNOWN_ERROR = 2000
    CR_SERVER_LOST = 2013
    CR_SSL_CONNECTION_ERROR = 2026
    CR_MALFORMED_PACKET = 2027
    CR_AUTH_PLUGIN_CANNOT_LOAD = 2059


SQLSTATE: dict[ErrorCode, bytes] = {
    ErrorCode.ER_DBACCESS_DENIED_ERROR: b"42000",
    ErrorCode.ER_HANDSHAKE_ERROR: b"08S01",
    ErrorCode.ER_ACCESS_DENIED_ERROR: b"28000",
    ErrorCode.ER_UNKNOWN_COM_ERROR: b"08S01",
    ErrorCode.ER_NOT_ALLOWED_COMMAND: b"42000",
    ErrorCode.ER_NET_PACKET_TOO_LARGE: b"08S01",
    ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER: b"08S01",
    ErrorCode.ER_NET_READ_ERROR: b"08S01",
    ErrorCode.ER_SPECIFIC_ACCESS_DENIED_ERROR: b"42000",
    ErrorCode.ER_UNKNOWN_STMT_HANDLER: b"HY000",
    ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE: b"08004",
    ErrorCode.ER_OPTION_PREVENTS_STATEMENT: b"HY000",
    ErrorCode.ER_QUERY_INTERRUPTED: b"70100",
    ErrorCode.ER_MALFORMED_PACKET: b"HY000",
}
"""SQLSTATE sent with each server error code; client-side (CR_*) codes default to HY000."""


def sqlstate_for(code: int) -> bytes:
    """The SQLSTATE to put in an ERR packet carrying ``code``."""
    try:
        return SQLSTATE[ErrorCode(code)]
    except (ValueError, KeyError):
        return b"HY000"


OK_HEADER = 0x00
EOF_HEADER = 0xFE
ERR_HEADER = 0xFF
LOCAL_INFILE_HEADER = 0xFB
AUTH_MORE_DATA_HEADER = 0x01
AUTH_SWITCH_HEADER = 0xFE
SQLSTATE_MARKER = 0x23  # '#'
NULL_LENENC = 0xFB
"""In a text row (and nowhere else), a lenenc value starting 0xFB is SQL NULL."""
EOF_MAX_PAYLOAD = 9
"""An EOF packet's payload is shorter than this; longer 0xFE packets are rows or OK packets."""

CACHING_SHA2_FAST_AUTH_SUCCESS = 0x03
CACHING_SHA2_PERFORM_FULL_AUTHENTICATION = 0x04
CACHING_SHA2_REQUEST_PUBLIC_KEY = 0x02
