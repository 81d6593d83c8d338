"""Accept RFC 7396 JSON Merge Patch bodies (application/merge-patch+json) like JSON."""

from rest_framework.parsers import JSONParser


class MergePatchJSONParser(JSONParser):
    media_type = "application/merge-patch+json"
