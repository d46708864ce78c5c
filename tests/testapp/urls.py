from django.contrib import admin
from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("worlds/", views.world_summaries),
    path("universe/worlds/", views.create_world),
    path("universe/worlds/<uuid:world_id>/", views.world_history),
    path("universe/worlds/<uuid:world_id>/make-it-so/", views.make_it_so),
]
