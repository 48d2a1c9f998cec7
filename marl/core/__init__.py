"""Pure math shared by the algorithms: no Ray in here, so it tests without starting Ray.

networks     the orthogonally initialised MLP and the value head (critic + value normaliser)
masking      means over the rows a loss mask keeps
gumbel       Gumbel noise, Gumbel-softmax, the straight-through estimator
graphs       edge density and depth of DAGs over agents
encoders     convolutional encoders for image observations
value_norm   running normalisation of value targets
gae          vectorised generalized advantage estimation
shapes       whether an observation shape is an image frame

Imports point down: modules here import only each other and marl.errors.
"""
