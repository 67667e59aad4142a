from django.urls import path

from feedback.apis import DoNotRecommendApi, FeedbackApi

urlpatterns = [
    path("feedback", FeedbackApi.as_view(), name="api-feedback"),
    path("do-not-recommend", DoNotRecommendApi.as_view(), name="api-do-not-recommend"),
]
