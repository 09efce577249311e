"""What the browser tests share: logging in with a key file as a person does."""
from nanbyo import auth
from tests.helpers import PASSWORD

DEMO_PASSWORD = "browser-demo-2026"  # the demo's accounts (nanbyo.demo.create_demo) in the browser tests


def key_path(tmp_path, user):
    """The user's key file saved where a browser can pick it."""
    path = tmp_path / auth.key_file_name(user)
    path.write_bytes(user.key_file)
    return path


def log_in(page, base, user, key_file, password=PASSWORD):
    """Log in through the login page; `user` is a User or a login ID."""
    page.goto(f"{base}/login")
    page.fill("input[name=login_id]", getattr(user, "login_id", user))
    page.fill("input[name=password]", password)
    page.set_input_files("input[name=key_file]", str(key_file))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "/login" not in page.url, page.content()


def assert_fits(page, tmp_path, name):
    """The menu bar is one line and nothing is wider than the window; a screenshot to look at."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    navbar = page.locator("nav.navbar").first.bounding_box()
    assert navbar["height"] < 80, f"{name}: the menu bar wraps ({navbar['height']}px)"
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{name}: {overflow}px wider than the window"


def download_every_scan(page, base) -> dict:
    """As the operator: tick every scan on the scans screen, download them as one ZIP; {entry name: bytes}."""
    import io
    import zipfile
    page.goto(f"{base}/admin/scans/")
    for box in page.locator("#scans input[name=ids]").all():
        box.check()
    with page.expect_download() as download:
        page.click("#scan-zip-submit")
    with zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
