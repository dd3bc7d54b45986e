"""The deployable network (BN folded, integers on the chip's grid), its retraining and its export to model.pt."""
