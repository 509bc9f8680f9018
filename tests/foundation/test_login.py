"""People log in with a password and get a session cookie; machines use tokens."""

from __future__ import annotations

from world import PASSWORD, World

from hazardloop.auth.roles import Role


def test_login_sets_an_httponly_session_cookie(client, world: World) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "operator", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "hl_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/v1/auth/me").json()["username"] == "operator"


def test_wrong_password_and_unknown_user_get_the_same_answer(client, world: World) -> None:
    wrong = client.post("/api/v1/auth/login", json={"username": "operator", "password": "nope-nope-nope"})
    unknown = client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_passwords_are_stored_as_argon2(db, world: World) -> None:  # noqa: ANN001
    assert world.users[Role.OPERATOR].password_hash.startswith("$argon2id$")


def test_logout_ends_the_session(client, world: World) -> None:
    client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
    client.post("/api/v1/auth/logout")
    assert client.get("/api/v1/auth/me").status_code == 401


def test_cross_site_post_with_a_cookie_is_refused(client, world: World) -> None:
    client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    response = client.post(
        "/api/v1/plant/sites", json={"code": "EVIL", "name_zh": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert client.get("/api/v1/plant/sites").json()[0]["code"] == "S1"


def test_login_page_and_plant_page_render_in_chinese_by_default(client, world: World) -> None:
    page = client.get("/login")
    assert page.status_code == 200 and "登录" in page.text
    response = client.post(
        "/login", data={"username": "safety_officer", "password": PASSWORD, "next": "/plant"}, follow_redirects=True
    )
    assert "装置与测点" in response.text and "罐区" in response.text and "锅炉房" not in response.text
    partial = client.get(f"/plant/areas/{world.area_a}/sensors")
    assert "GT-101" in partial.text and "可燃气体" in partial.text


def test_language_switch_gives_english(client, world: World) -> None:
    client.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/plant"})
    page = client.get("/lang/en?next=/plant", follow_redirects=True)
    assert "Plant &amp; sensors" in page.text and "Site plan" in page.text
    assert "装置与测点" not in page.text


def test_login_form_does_not_redirect_off_site(client, world: World) -> None:
    response = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "next": "//evil.example/x"}, follow_redirects=False
    )
    assert response.headers["location"] == "/"


def test_unknown_area_page_is_not_found_for_scoped_user(client, world: World) -> None:
    client.post("/login", data={"username": "viewer", "password": PASSWORD})
    assert client.get(f"/plant/areas/{world.area_b}/sensors").status_code == 404


def test_health_and_openapi(client) -> None:  # noqa: ANN001
    assert client.get("/health").json()["status"] == "ok"
    assert "/api/v1/plant/sensors" in client.get("/openapi.json").json()["paths"]


def test_i18n_catalogues_have_the_same_keys() -> None:
    from hazardloop.web.i18n import catalogue

    assert catalogue("zh-CN").keys() == catalogue("en").keys()


def test_ids_beyond_the_database_range_are_refused_not_crashed(client, world: World) -> None:
    admin = world.auth(Role.ADMIN)
    assert client.get("/api/v1/plant/sensors/32129629967730070132757784496709828608", headers=admin).status_code == 422
    assert client.get("/api/v1/audit", params={"before_seq": 2**80}, headers=admin).status_code == 422
