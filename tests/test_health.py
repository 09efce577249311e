"""/healthz for monitoring (issue 15): the database and the queue checked, ok / error only, nothing leaked; and the
app refuses to start on a libxml2 with known, fixed vulnerabilities."""
import pytest

from nanbyo import security, tasks
from tests.helpers import log_entries


def test_healthz_says_ok_without_login_and_logs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "database": "ok", "queue": "ok"}
    assert response.headers["Cache-Control"] == "no-store" and log_entries("login") == []


def test_healthz_names_what_fails_and_no_more(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("password=secret host=db.internal")
    monkeypatch.setattr("views.health.db.session.execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "error", "queue": "ok"}
    assert b"secret" not in response.data and b"db.internal" not in response.data
    monkeypatch.undo()
    monkeypatch.setattr(tasks.huey.storage, "queue_size", broken)
    assert client.get("/healthz").get_json() == {"status": "error", "database": "ok", "queue": "error"}


@pytest.mark.parametrize("version, refused", [((2, 9, 14), True), ((2, 12, 10), True), ((2, 13, 8), True),
                                              ((2, 13, 9), False), ((2, 14, 4), True), ((2, 14, 5), False),
                                              ((2, 15, 0), False)])
def test_libxml2_with_known_vulnerabilities_is_refused(version, refused):
    assert (security.libxml2_problem(version) is not None) is refused


def test_the_app_does_not_start_on_such_a_libxml2(monkeypatch):
    from lxml import etree
    from app import create_app
    monkeypatch.setattr(etree, "LIBXML_VERSION", (2, 14, 4))
    with pytest.raises(RuntimeError, match="2.14.5"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})


@pytest.mark.parametrize("hops, address", [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_the_logged_address_is_the_proxys_word_only_when_a_proxy_is_configured(app, hops, address):
    from app import create_app
    from tests.helpers import gen_user, login
    served = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                         "SECRET_KEY": "test", "NANBYO_PROXY_HOPS": hops, "WTF_CSRF_ENABLED": True})
    with served.app_context():
        user = gen_user("municipality_user")
        client = served.test_client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
        assert login(client, user).status_code == 302
        assert log_entries("login")[-1].remote_addr == address
