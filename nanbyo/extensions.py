"""Flask extensions, created once and bound in create_app()."""
import os

from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


def _locale():
    # UI language is Japanese; nothing else is offered.
    return "ja"


def init_extensions(app):
    import models  # noqa: F401  registers every model on the metadata

    db.init_app(app)
    from nanbyo.database import configure_engine
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=os.path.join(app.root_path, "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_locale, timezone_selector=lambda: "Asia/Tokyo")
    login_manager.login_view = "auth.login"
    login_manager.login_message = "ログインしてください。"
    login_manager.session_protection = None  # sessions are checked server-side instead (nanbyo.sessions)
