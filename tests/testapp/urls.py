from django.contrib import admin
from django.urls import path

from tests.testapp.views import world_summaries

urlpatterns = [
    path("admin/", admin.site.urls),
    path("worlds/", world_summaries),
]
