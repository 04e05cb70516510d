"""What a reader of a reference-manager library returns (``base.domain.LibraryRead``, where
the library format's Protocol in ``base.formats`` names it)."""

from recommender.base.domain import LibraryRead

__all__ = ["LibraryRead"]
