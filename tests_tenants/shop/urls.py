from django.contrib import admin
from django.urls import path

from tests_tenants.shop.views import create_world

urlpatterns = [path("worlds/", create_world), path("admin/", admin.site.urls)]
