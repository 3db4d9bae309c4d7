"""The read-only admin through Django's test client: pages, columns, filters, the compare page, who may see
them (the same pages in a real browser: test_admin_browser.py)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from poolbench.models import Sweep
from tests.sample_sweeps import make_sweep, typical_sweep

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_admin_is_read_only_even_for_a_superuser(admin_client):
    sweep = typical_sweep()
    changelist = admin_client.get(reverse("admin:poolbench_sweep_changelist"))
    assert changelist.status_code == 200
    actions = [a[0] for a in changelist.context["action_form"].fields["action"].choices]
    assert actions == ["", "compare_selected", "export_csv", "export_json"]  # no delete_selected
    assert reverse("admin:poolbench_sweep_add") not in changelist.content.decode()
    assert admin_client.get(reverse("admin:poolbench_sweep_add")).status_code == 403
    url = reverse("admin:poolbench_sweep_change", args=[sweep.pk])
    before = Sweep.objects.values().get(pk=sweep.pk)
    assert admin_client.post(url, {"status": "failed", "recommendation": "edited"}).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:poolbench_sweep_delete", args=[sweep.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert Sweep.objects.values().get(pk=sweep.pk) == before and sweep.trials.count() == 7
    page = admin_client.get(url).content.decode()
    assert 'name="_save"' not in page and "deletelink" not in page


def test_sweep_page_shows_charts_and_inline_trials(viewer):
    sweep = typical_sweep()
    page = viewer.get(reverse("admin:poolbench_sweep_change", args=[sweep.pk])).content.decode()
    chart = re.search(r'<svg class="pb-chart" data-metric="rps".*?</svg>', page, re.S).group(0)
    points = [float(v) for v in re.findall(r'data-rps="([^"]+)"', chart)]
    assert points == [t.rps for t in sweep.trials.order_by("index") if t.status == "ok"]
    assert len(re.findall(r'<tr class="form-row[^"]*"\s+id="trials-\d+"', page)) == 7


def test_changelist_columns_filters_and_search(viewer):
    pg = typical_sweep(target="postgresql://root@db.example:5432/shop")
    my = make_sweep(
        [{"pool_size": 4, "rps": 10.0}], vendor="mysql", alias="mysql", target="mysql://root@m:3306/x"
    )
    url = reverse("admin:poolbench_sweep_changelist")
    page = viewer.get(url).content.decode()
    assert (
        "1,103.2 (size 16)" in page
        and "5, 10, 16, 50, 200" in page
        and "postgresql://root@db.example:5432/shop" in page
    )
    assert [s.pk for s in viewer.get(url, {"vendor__exact": "mysql"}).context["cl"].result_list] == [my.pk]
    assert [s.pk for s in viewer.get(url, {"q": "db.example"}).context["cl"].result_list] == [pg.pk]
    assert [s.pk for s in viewer.get(url, {"status__exact": "done"}).context["cl"].result_list] == [
        my.pk,
        pg.pk,
    ]


def test_compare_action_and_page(viewer):
    a, b = typical_sweep(minutes_ago=90), make_sweep([{"pool_size": 3, "rps": 5.0}], minutes_ago=10)
    url = reverse("admin:poolbench_sweep_changelist")
    response = viewer.post(url, {"action": "compare_selected", "_selected_action": [a.pk, b.pk]})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:poolbench_sweep_compare") + f"?ids={a.pk},{b.pk}"
    page = viewer.get(response["Location"]).content.decode()
    chart = re.search(r'<svg class="pb-chart" data-metric="rps".*?</svg>', page, re.S).group(0)
    assert len(re.findall(rf'data-sweep="{a.pk}" data-trial', chart)) == 6
    assert len(re.findall(rf'data-sweep="{b.pk}" data-trial', chart)) == 1
    # One sweep is not a comparison.
    one = viewer.post(url, {"action": "compare_selected", "_selected_action": [a.pk]}, follow=True)
    assert "Select two or more sweeps to compare." in one.content.decode()


def test_non_staff_and_staff_without_permission_see_nothing(client):
    sweep = typical_sweep()
    pages = [
        reverse("admin:poolbench_sweep_changelist"),
        reverse("admin:poolbench_sweep_change", args=[sweep.pk]),
        reverse("admin:poolbench_sweep_compare") + f"?ids={sweep.pk},{sweep.pk}",
    ]
    user = User.objects.create_user("visitor", password="pw", is_staff=False)
    client.force_login(user)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), url
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    for url in pages:
        assert client.get(url).status_code == 403, url
    export_post = client.post(pages[0], {"action": "export_csv", "_selected_action": [sweep.pk]})
    assert export_post.status_code == 403


def test_admin_sweep_page_shows_the_size_summary_inline(viewer):
    sweep = typical_sweep()
    page = viewer.get(reverse("admin:poolbench_sweep_change", args=[sweep.pk])).content.decode()
    rows = re.findall(r'<tr class="form-row[^"]*"\s+id="size_summaries-\d+"', page)
    assert len(rows) == 4
    # The by-size table comes right after the answer, before the charts and the trials.
    assert (
        page.index('id="pb-answer"')
        < page.index('id="size_summaries-group"')
        < page.index('<div class="pb-charts">')
    )
    group = page[page.index('id="size_summaries-group"') : page.index('<h2 class="pb-heading">Charts')]
    assert [float(v) for v in re.findall(r'data-rps="([^"]+)"', group)] == [512.35, 1011.33, 1103.25, 701.9]


def test_admin_trial_list_sorts_by_the_result_columns(viewer):
    sweep = make_sweep(
        [
            {"pool_size": 8, "rps": 1.0, "mean_connections": 2.5, "pool_wait_mean_ms": 0.5},
            {"pool_size": 2, "rps": 2.0, "mean_connections": 7.5, "pool_wait_mean_ms": 9.0},
            {"pool_size": 4, "rps": 3.0, "mean_connections": 0.5, "pool_wait_mean_ms": 3.0},
        ]
    )
    url = reverse("admin:poolbench_trial_changelist")
    columns = viewer.get(url).context["cl"].list_display
    for column, field in (("peak_conns", "peak_connections"), ("mean_conns", "mean_connections"),
                          ("wait_ms", "pool_wait_mean_ms")):  # fmt: skip
        o = columns.index(column)  # the changelist's ?o= counts its columns from 0
        for sign, reverse_order in (("", False), ("-", True)):
            result = viewer.get(url, {"o": f"{sign}{o}"}).context["cl"].result_list
            expected = sorted(sweep.trials.all(), key=lambda t: getattr(t, field), reverse=reverse_order)
            assert [t.pk for t in result] == [t.pk for t in expected], (column, sign)
