"""Spine's Desk settings as the runtime reads them: Spine Producer/Consumer Config as small dicts
cached in Redis (``config_cache``) and the validation rules their controllers share (``validation``).

May import ``spine.compat`` and the plain-Python modules only; producer, consumer and desk build on it.
"""
