"""Ranking: text features, reader factors, readers' own classifiers, profiles and scores."""
