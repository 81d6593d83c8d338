from django.urls import path

from changes.api.views import ChangeSetViewSet, PlanViewSet

SOURCE = "data-sources/<str:pk>/plans/"
PLAN = SOURCE + "<str:plan_id>/"

urlpatterns = [
    path(SOURCE, PlanViewSet.as_view({"get": "list", "post": "create"}), name="data-source-plans"),
    path(PLAN, PlanViewSet.as_view({"get": "retrieve", "delete": "destroy"}), name="data-source-plan"),
    path(PLAN + "apply/", PlanViewSet.as_view({"post": "apply"}), name="data-source-plan-apply"),
    path("data-sources/<str:pk>/revisions/<str:number>/plan/", PlanViewSet.as_view({"post": "restore_plan"}),
         name="data-source-revision-plan"),
    path("change-sets/", ChangeSetViewSet.as_view({"get": "list", "post": "create"}), name="change-sets"),
    path("change-sets/<str:pk>/", ChangeSetViewSet.as_view({"get": "retrieve"}), name="change-set"),
    path("change-sets/<str:pk>/apply/", ChangeSetViewSet.as_view({"post": "apply"}), name="change-set-apply"),
]
