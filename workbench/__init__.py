"""The product's library, by floor: ``base`` (vocabulary), ``store`` (storage), ``services`` and ``editor``
(the API of the panel and notebooks), ``launcher`` (``python -m workbench``). See docs/architecture.md.
"""
