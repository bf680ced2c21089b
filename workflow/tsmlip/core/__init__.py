"""The numerical core shared by the steps: the stacked HIPNN of the fast training engine (:mod:`.hipnn_stack`)
and the per-configuration pair geometry it trains on (:mod:`.geometry`)."""
