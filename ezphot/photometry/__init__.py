"""Photometry methods: SExtractor detection photometry, photutils detection and forced
photometry."""
