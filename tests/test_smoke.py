from tests.conftest import ApiClient, task_body


def test_create_and_get_task(user: ApiClient) -> None:
    created = user.post("/tasks", json_body=task_body())
    assert created.status == 201
    task = created.json()
    assert created.header("Location") == f"/tasks/{task['id']}"
    fetched = user.get(f"/tasks/{task['id']}")
    assert fetched.status == 200
    assert fetched.json() == task
