"""Adapters of public remote sensing datasets: caption sets (RSICD, UCM, Sydney, RSITMD) and scene folders."""
