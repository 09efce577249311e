from tests.helpers import gen_institution, gen_user, login


def test_login_and_institution_list(client):
    inst = gen_institution()
    user = gen_user("municipality_admin")
    assert login(client, user).status_code == 302
    page = client.get("/admin/institution/").get_data(as_text=True)
    assert inst.code in page and "医療機関" in page
