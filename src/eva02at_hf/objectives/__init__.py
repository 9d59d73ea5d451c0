"""The paper's training objectives: the losses on a similarity matrix and the relevancy they are trained on."""
