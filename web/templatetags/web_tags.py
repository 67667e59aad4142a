from django import template

register = template.Library()


@register.filter
def duration(milliseconds) -> str:
    """215000 → "3:35"."""
    if not milliseconds:
        return ""
    minutes, seconds = divmod(round(int(milliseconds) / 1000), 60)
    return f"{minutes}:{seconds:02d}"
