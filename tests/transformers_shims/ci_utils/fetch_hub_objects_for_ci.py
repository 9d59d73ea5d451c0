"""Stand-in for transformers' `utils/fetch_hub_objects_for_ci.py`, absent from the sdist.

Transformers' CI pre-downloads Hub fixtures and maps their URLs to local copies. There is no Hub here: URLs are
returned unchanged, so a test that would open one fails rather than silently using something else.
"""


def url_to_local_path(url: str, return_url_if_not_found: bool = True) -> str:
    return url
