"""The database going away (issue 15): PostgreSQL restarting ends the app's connections. A request whose connection
dies under it gets the Japanese error page, and the next request works, as does a request
after a restart while the app was idle (the pool tests a connection before handing it out)."""
import pytest
from sqlalchemy import text

from nanbyo.extensions import db
from nanbyo.stats import counts
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import gen_user, login

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="a PostgreSQL server's connections")


def terminate_connections(template):
    """What a restart does to the connections: every backend of this database but the one asking ends (the test
    harness's own pool is then emptied, so that it reconnects)."""
    db.session.remove()  # the test's own session gives its connection back first: the pool tests it before reuse
    with db.engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        connection.commit()
    template["engine"].dispose()


def test_a_restart_between_requests_goes_unnoticed(app, client, database_template):
    login(client, gen_user("operator_admin"))
    assert client.get("/admin/stats/?by1=kind").status_code == 200
    terminate_connections(database_template)
    assert client.get("/admin/stats/?by1=kind").status_code == 200


def test_a_connection_lost_mid_request_gives_the_error_page_and_the_next_request_works(app, client, monkeypatch,
                                                                                     database_template):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # served as in production: the error page, not the traceback
    login(client, gen_user("operator_admin"))
    real = counts.count

    def dying(user, request):
        db.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))  # the server goes away here
        return real(user, request)
    monkeypatch.setattr(counts, "count", dying)
    response = client.get("/admin/stats/?by1=kind")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "システムエラーが発生しました" in page and "もう一度操作してください" in page
    monkeypatch.undo()
    assert client.get("/admin/stats/?by1=kind").status_code == 200
    assert client.get("/admin/").status_code == 200
    database_template["engine"].dispose()  # its pooled connection may have been one of those ended
