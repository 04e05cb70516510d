"""Security against the real thing: file modes under a usual umask, a live `serve` probed with
raw sockets (oversized headers, idle and trickling clients, forged forwarding headers), a link
scanner sweeping from many addresses, links that keep their issue time, terminal escapes in
stored text, hostile inputs and masked secrets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from itsdangerous.encoding import base64_decode
from starlette.testclient import TestClient

from recommender import pipeline
from recommender.base.config import Config, load_config
from recommender.base.link_signing import LinkSigner, LinkToken, TokenExpired
from recommender.feedback.clicks import FeedbackService
from recommender.feedback.limits import RateLimiter, client_key
from recommender.pipeline import digests
from recommender.pipeline.web_site import web_app
from recommender.store import Store
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox

from conftest import SECRET, SEEDS, recommender_command, write_config
from smtp_server import free_port

USERS = '[[users]]\nemail = "ada@example.org"\nmax_items = 8\n[[users]]\nemail = "bob@example.org"\nmax_items = 8\n'


def _cli(tmp_path: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(recommender_command("--config", str(tmp_path / "config.toml"), *args), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(umask))


def _private(path: Path) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_everything_written_is_owner_only_under_umask_022_and_init_tightens_an_old_database(tmp_path: Path):
    write_config(tmp_path, users=USERS)
    assert _cli(tmp_path, "init").returncode == 0
    assert _cli(tmp_path, "ingest", *map(str, SEEDS[:2])).returncode == 0
    preview = _cli(tmp_path, "digest", "preview", "--user", "ada@example.org", "--out", "previews/ada.html",
                   "--eml", "previews/ada.eml")
    assert preview.returncode == 0, preview.stderr
    folder = tmp_path / "db"
    written = [p for p in folder.rglob("*")] + [folder, tmp_path / "previews", *(tmp_path / "previews").iterdir()]
    assert any(p.suffix == ".model" for p in written)
    for path in written:
        assert _private(path), f"{path}: {stat.filemode(os.stat(path).st_mode)}"
    database = folder / "recommender.sqlite"
    os.chmod(database, 0o644)
    os.chmod(folder / "recommender.sqlite-models", 0o755)
    again = _cli(tmp_path, "init")
    assert "made owner-only" in again.stdout and "(was 0644)" in again.stdout and "(was 0755)" in again.stdout
    assert _private(database) and _private(folder / "recommender.sqlite-models")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Store, Path]]:
    yield from _serve(tmp_path, "rate_limit_per_minute = 20\nrequest_timeout_seconds = 1.0\n")


def _serve(tmp_path: Path, feedback: str) -> Iterator[tuple[str, Store, Path]]:
    port = free_port()
    extra = f'[feedback]\nbase_url = "http://127.0.0.1:{port}"\n' + feedback
    path = write_config(tmp_path, users=USERS, extra=extra)
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 3, 20))
    digests.queue_digests(digests.DigestWork(config, store, lambda: datetime.now(UTC)), config.users)
    log = (tmp_path / "serve.log").open("w")  # the server's log, for the tests that read it
    process = subprocess.Popen(recommender_command("--config", str(path), "serve", "--port", str(port)), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", store, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        store.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _raw(url: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(url)), timeout=10)


def _held(url: str, count: int) -> list[socket.socket]:
    """``count`` connections, each holding a half-sent request open."""
    held = [_raw(url) for _ in range(count)]
    for sock in held:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    return held


def _release_and_check_served(url: str, held: list[socket.socket]) -> None:
    for sock in held:
        sock.close()
    time.sleep(0.3)
    assert httpx.get(url + "/").status_code == 200


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes the connection (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("before", [b"", b"\r\n\r\n"])  # empty lines before a request line are skipped, not its end
def test_an_oversized_request_head_is_refused_with_431(served, before: bytes):
    url, _, _ = served
    with _raw(url) as sock:
        sock.sendall(before + b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
        sock.settimeout(10)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert reply.startswith(b"HTTP/1.1 431") or reply == b""
    assert b"content-security-policy" in reply.lower() or reply == b""
    assert httpx.get(url + "/").status_code == 200  # and the server still serves


@pytest.mark.parametrize("kind", ["idle", "trickling", "half-sent"])
def test_slow_clients_are_closed_within_the_request_timeout(served, kind: str):
    url, _, _ = served
    with _raw(url) as sock:
        if kind == "half-sent":
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        elif kind == "trickling":
            try:
                for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                return  # closed while it trickled
        assert _closed_within(sock, 5.0)


def test_connections_beyond_the_cap_are_refused_and_the_server_recovers(tmp_path: Path):
    serving = _serve(tmp_path, "max_connections = 3\nrequest_timeout_seconds = 30.0\n")
    url, _, _ = next(serving)
    try:
        held = _held(url, 3)
        refused = httpx.get(url + "/")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "10"
        assert refused.headers["content-security-policy"].startswith("default-src 'none'")
        _release_and_check_served(url, held)
    finally:
        serving.close()


def test_a_server_error_page_carries_the_security_headers(world):
    config, store, issued = world
    view = _digest_links(config, store, "ada@example.org")["digest"][0]
    with store.write() as conn:
        conn.exec_driver_sql("DROP TABLE digest_entries")
    with TestClient(web_app(config, store, lambda: issued + timedelta(hours=1)), base_url="http://127.0.0.1:8080",
                    raise_server_exceptions=False) as client:
        page = client.get(f"/digest/{view}")
    assert page.status_code == 500 and "Traceback" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"


def test_no_server_banner_and_security_headers_on_every_page(served):
    url, _, _ = served
    for path, status in (("/", 200), ("/nothing-here", 404), ("/feedback/more/forged.token.here", 400)):
        response = httpx.get(url + path)
        assert response.status_code == status
        assert "server" not in response.headers
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_forged_forwarding_headers_do_not_escape_the_rate_limit_and_bad_tokens_count(served):
    url, _, _ = served
    statuses = [httpx.get(f"{url}/feedback/more/not-a-token-{i}", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                for i in range(30)]
    assert statuses[:20] == [400] * 20 and set(statuses[20:]) == {429}
    assert httpx.post(f"{url}/unsubscribe/not-a-token", data={"List-Unsubscribe": "One-Click"}).status_code == 429


def test_the_rate_limiter_costs_the_same_at_any_number_of_clients():
    limiter = RateLimiter(2, max_clients=1000)
    for i in range(5000):
        assert limiter.allow(f"client-{i}")
    assert len(limiter.hits) == 1000  # the least recently seen are forgotten
    assert limiter.allow("client-4999") and not limiter.allow("client-4999")


def _digest_links(config: Config, store: Store, email: str) -> dict[str, list[str]]:
    item = [i for i in Outbox(store).items() if i.email == email][-1]
    message = message_from_bytes(digests.message_of(digests.DigestWork(config, store), item.id), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    found: dict[str, list[str]] = {}
    for kind, token in re.findall(r"http://127\.0\.0\.1:8080/(feedback/more|feedback/less|open|digest)/([\w.-]+)", text):
        found.setdefault(kind, []).append(token)
    return found


@pytest.fixture
def world(tmp_path: Path):
    config = load_config(write_config(tmp_path, users=USERS))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 3, 20))
    issued = datetime(2025, 3, 21, 7, 30, tzinfo=UTC)
    digests.queue_digests(digests.DigestWork(config, store, lambda: issued), config.users)
    yield config, store, issued
    store.close()


def test_a_scanner_sweeping_from_many_addresses_records_nothing_and_a_quick_reader_keeps_every_open(world):
    config, store, issued = world
    now = [issued + timedelta(hours=1)]
    service = FeedbackService(config, store, lambda: now[0])
    try:
        # ada opens six papers in new tabs within ten seconds, then asks for more of one.
        ada = _digest_links(config, store, "ada@example.org")
        for i, token in enumerate(ada["open"][:6]):
            now[0] += timedelta(seconds=1.5)
            assert asyncio.run(service.click_async(token, "open", f"203.0.113.{i % 2}")).recorded
        assert asyncio.run(service.click_async(ada["feedback/more"][0], "more", "203.0.113.1")).recorded
        # A mail-security scanner fetches every link of bob's digest, one address per link.
        bob = _digest_links(config, store, "bob@example.org")
        sweep = [(t, "more") for t in bob["feedback/more"]] + [(t, "less") for t in bob["feedback/less"]] \
            + [(t, "open") for t in bob["open"]]
        sweep.sort(key=lambda link: bob["feedback/more" if link[1] == "more" else
                                       "feedback/less" if link[1] == "less" else "open"].index(link[0]))
        assert len(sweep) >= 20
        for i, (token, action) in enumerate(sweep):
            now[0] += timedelta(milliseconds=300)
            asyncio.run(service.click_async(token, action, f"192.0.2.{i}"))
    finally:
        service.close()
    events = FeedbackLog(store).events()
    assert sorted(e.action for e in events if e.email == "ada@example.org") == ["more"] + ["open"] * 6
    assert [e for e in events if e.email == "bob@example.org"] == []


def test_the_web_view_keeps_the_digests_issue_time_on_its_links(world):
    config, store, issued = world
    late = issued + timedelta(days=config.feedback.max_age_days - 1)
    view = _digest_links(config, store, "ada@example.org")["digest"][0]
    with TestClient(web_app(config, store, lambda: late), base_url="http://127.0.0.1:8080") as client:
        page = client.get(f"/digest/{view}")
    assert page.status_code == 200
    signer = LinkSigner(SECRET)
    tokens = re.findall(r"/(?:feedback/more|feedback/less|open)/([\w.-]+)", page.text)
    assert tokens
    for token in tokens:
        assert signer.verify(token).issued_at == issued


def test_terminal_escapes_in_stored_text_are_never_shown(tmp_path: Path):
    write_config(tmp_path, users=USERS)
    feed = tmp_path / "evil.jsonl"
    feed.write_text(json.dumps({"id": "evil1", "title": "Attention \x1b]0;pwned\x07is all \x1b[2Jyou need\x9b31m",
                                "abstract": "We \x1b[31mcolour\x1b[0m the terminal.\rOverwritten\x07 line.",
                                "authors": ["Eve \x1b[8mHidden\x1b[28m Person"]}) + "\n", encoding="utf-8")
    assert _cli(tmp_path, "init").returncode == 0
    assert _cli(tmp_path, "ingest", "--format", "jsonl", "--date", "2025-03-20", str(feed)).returncode == 0
    for args in (["papers", "show", "evil1"], ["papers", "show", "evil1", "--json"], ["papers", "list"],
                 ["papers", "list", "--json"], ["recommend", "--user", "ada@example.org"],
                 ["recommend", "--user", "ada@example.org", "--json"]):
        done = _cli(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        for forbidden in ("\x1b", "\x07", "\x9b", "\r", "\\u001b", "\\u0007", "\\u009b", "\\r"):
            assert forbidden not in done.stdout, (args, forbidden)
    shown = json.loads(_cli(tmp_path, "papers", "show", "evil1", "--json").stdout)
    assert shown["title"] == "Attention is all you need"
    assert shown["authors"] == ["Eve Hidden Person"]
    store = Store.open(f"sqlite:///{tmp_path / 'db' / 'recommender.sqlite'}")
    assert "\x1b[31mcolour" in store.paper("evil1").abstract  # stored as given
    store.close()


@pytest.mark.parametrize(("name", "content", "fmt"), [
    ("digits.jsonl", '{"id": ' + "9" * 5000 + ', "title": "t", "abstract": "a"}\n', "jsonl"),
    ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "jsonl"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "hf_daily"),
])
def test_hostile_inputs_get_one_line_and_a_non_zero_exit(tmp_path: Path, name: str, content: str, fmt: str):
    write_config(tmp_path, users=USERS)
    assert _cli(tmp_path, "init").returncode == 0
    (tmp_path / name).write_text(content, encoding="utf-8")
    done = _cli(tmp_path, "ingest", "--format", fmt, str(tmp_path / name))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"Error: {tmp_path / name}") and done.stderr.count("\n") <= 2


@pytest.mark.parametrize("config_text", [
    "a = " + "[" * 5000 + "]" * 5000 + "\n",
    '[[users]]\nemail = "ada@example.org"\ntimezone = "' + "Europe/" * 40 + 'X"\n',
    '[smtp]\nfrom = "Digest \\r\\nBcc: all@example.org <d@lab.example.org>"\n[[users]]\nemail = "ada@example.org"\n',
])
def test_hostile_config_files_get_one_line_and_exit_2(tmp_path: Path, config_text: str):
    (tmp_path / "config.toml").write_text(config_text, encoding="utf-8")
    for args in (["config", "check"], ["digest", "send"]):
        done = _cli(tmp_path, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout, done.stderr


def test_database_passwords_are_masked_in_every_message(tmp_path: Path):
    port = free_port()
    url = f"postgresql+psycopg://digest:s3cret-pass@127.0.0.1:{port}/none"
    write_config(tmp_path, users=USERS, database_url=url)
    checked = _cli(tmp_path, "config", "check")
    assert "s3cret-pass" not in checked.stdout + checked.stderr and "digest:***@" in checked.stdout
    failed = _cli(tmp_path, "papers", "list")
    assert failed.returncode != 0 and "s3cret-pass" not in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr


def test_links_on_the_wrong_route_a_slash_or_a_rewritten_token_do_nothing(world):
    config, store, issued = world
    links = _digest_links(config, store, "ada@example.org")
    more, opened = links["feedback/more"][0], links["open"][0]
    with TestClient(web_app(config, store, lambda: issued + timedelta(hours=1)), base_url="http://127.0.0.1:8080") \
            as client:
        # An open link on the more/less route is no "fewer papers like" click.
        assert client.get(f"/feedback/open/{opened}").status_code == 404
        assert client.head(f"/feedback/digest/{links['digest'][0]}").status_code == 404
        # A trailing slash is no redirect built from the Host header (the token would go there).
        slashed = client.get(f"/open/{opened}/", headers={"Host": "attacker.example"}, follow_redirects=False)
        assert slashed.status_code == 404 and "location" not in slashed.headers
        # The same token written otherwise (padding, the last character's unused bits) is refused.
        payload, stamp, signature = more.split(".")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        flipped = signature[:-1] + next(c for c in alphabet if c != signature[-1] and
                                        base64_decode(signature[:-1] + c) == base64_decode(signature))
        for variant in (more + "=", f"{payload}.{stamp}.{flipped}", f"{payload}=.{stamp}.{signature}"):
            assert client.get(f"/feedback/more/{variant}").status_code == 400
        assert client.get(f"/feedback/more/{more}").status_code == 200
        # A method a route does not take is answered 405 with the methods it does (RFC 9110).
        refused = client.put(f"/feedback/more/{more}")
        assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert [e.action for e in FeedbackLog(store).events()] == ["more"]


def test_a_link_signed_by_a_clock_a_little_ahead_is_no_expired_link():
    now = datetime(2025, 3, 21, 7, 30, tzinfo=UTC)
    here = LinkSigner(SECRET, lambda: now)
    for ahead, works in ((timedelta(seconds=90), True), (timedelta(hours=2), False)):
        token = LinkSigner(SECRET, lambda ahead=ahead: now + ahead).sign(LinkToken("more", 1, 2, 3))
        if works:
            assert here.verify(token, max_age_seconds=3600).user_id == 1
        else:
            with pytest.raises(TokenExpired):
                here.verify(token, max_age_seconds=3600)


def test_one_address_cannot_take_every_connection(tmp_path: Path):
    serving = _serve(tmp_path, "max_connections = 50\nmax_connections_per_client = 3\nrequest_timeout_seconds = 30.0\n")
    url, _, _ = next(serving)
    try:
        held = _held(url, 3)
        with _raw(url) as fourth:
            fourth.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            fourth.settimeout(10)
            answer = fourth.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 10" in answer.lower()
        # Another address is served meanwhile.
        other = socket.create_connection(("127.0.0.1", _port(url)), timeout=10, source_address=("127.0.0.2", 0))
        with other:
            other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert other.recv(65536).startswith(b"HTTP/1.1 200")
        _release_and_check_served(url, held)
    finally:
        serving.close()


def _server_side_state(server_port: int, client_port: int) -> str | None:
    """The TCP state (Linux's /proc/net/tcp code, "01" established) of the server's end of a
    loopback connection, None when it is gone."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return state
    return None


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the connection's state from Linux's /proc")
def test_a_client_that_never_reads_its_answers_is_dropped(served):
    url, _, _ = served  # request_timeout_seconds = 1.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", _port(url)))
    sock.settimeout(2)
    sent = 0
    try:
        for _ in range(20_000):  # pipelined, never read: the answers pile up in the server's buffer
            sock.sendall(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
            sent += 1
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass
    client_port = sock.getsockname()[1]
    assert sent > 1000 and _server_side_state(_port(url), client_port) == "01"
    time.sleep(3)  # the request timeout (1 s) and then some, reading nothing
    assert _server_side_state(_port(url), client_port) != "01"  # the server let go of it
    sock.close()
    assert httpx.get(url + "/").status_code == 200
    logged = (served[2] / "serve.log").read_text()
    assert "ERROR" not in logged, logged  # a client gone is no server error (nor are its pipelined requests)


def test_a_preview_link_says_it_is_one(world):
    config, store, issued = world
    signer = LinkSigner(SECRET, lambda: issued)
    ada = store.user_id("ada@example.org")
    with TestClient(web_app(config, store, lambda: issued + timedelta(hours=1)), base_url="http://127.0.0.1:8080") \
            as client:
        for path in (f"/feedback/more/{signer.sign_link('more', ada, 0, 0)}", f"/open/{signer.sign_link('open', ada, 0, 0)}",
                     f"/digest/{signer.sign_link('view', ada, 0)}"):
            page = client.get(path, follow_redirects=False)
            assert page.status_code == 400 and "This link is from a preview" in page.text, path
    assert FeedbackLog(store).events() == []


def test_websocket_upgrades_are_plain_requests_and_leave_no_connection_counted(tmp_path: Path):
    serving = _serve(tmp_path, "max_connections_per_client = 2\n")
    url, _, _ = next(serving)
    try:
        for _ in range(5):  # each closed after its answer: none may stay counted against the address
            with _raw(url) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                assert not sock.recv(65536).startswith(b"HTTP/1.1 101")
        time.sleep(0.3)
        assert httpx.get(url + "/").status_code == 200
    finally:
        serving.close()


@pytest.mark.parametrize("request_line", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"])
def test_a_request_uvicorn_cannot_parse_is_answered_400_with_the_security_headers(served, request_line: bytes):
    url, _, _ = served
    with _raw(url) as sock:
        sock.sendall(request_line)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 400") and b"content-security-policy: default-src 'none'" in head
    assert b"x-frame-options: deny" in head
    assert httpx.get(url + "/").status_code == 200


@pytest.mark.parametrize(("address", "neighbour", "counted_as"), [
    ("203.0.113.7", "203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2:bbbb:cccc:dddd:eeee", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7", "203.0.113.7"),
    ("unknown", "unknown", "unknown"),
])
def test_an_ipv6_client_is_counted_by_its_64(address: str, neighbour: str, counted_as: str):
    """A client taking a new address of its /64 for each request is still one client."""
    assert client_key(address) == client_key(neighbour) == counted_as
    limiter = RateLimiter(2)
    assert limiter.allow(client_key(address)) and limiter.allow(client_key(address))
    assert not limiter.allow(client_key(neighbour))
    assert limiter.allow(client_key("2001:db8:1:3::1"))  # the next /64 is another client
