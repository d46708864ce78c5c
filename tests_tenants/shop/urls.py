from django.urls import path

from tests_tenants.shop.views import create_world

urlpatterns = [path("worlds/", create_world)]
