"""The contracts between the stages: the model.pt schema (`artifact`), the chip's integer
semantics (`chip`) and where a wide readout is cut into parts (`readout`)."""
