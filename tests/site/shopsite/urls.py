from django.contrib import admin
from django.urls import path

from books import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("books/", views.book_list, name="book-list"),
    path("books/<int:pk>/", views.book_detail, name="book-detail"),
    path("private/", views.private, name="private"),
    path("broken/", views.broken, name="broken"),
]
