"""WTForms forms (Flask-WTF: every POST carries the CSRF token)."""
