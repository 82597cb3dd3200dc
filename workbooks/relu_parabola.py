"""A two-layer ReLU network that approximates y = x² — the smallest neural network worth
looking at. Four hidden ReLU units each switch on at a knot (x = 0, ±0.5); their weighted sum
is a piecewise-linear curve through the parabola. Edit a weight and re-run `loss`."""

x: cell(rows="x") = linspace(-1.0, 1.0, 21)
"""Inputs: 21 evenly spaced points from -1 to 1."""

target = x**2
"""What we want the network to output: the parabola x²."""

w1: cell(cols="units") = array([[1.0, -1.0, 1.0, -1.0]])
"""First-layer weights (1 input -> 4 hidden units): the slope sign of each unit."""

b1 = array([0.0, 0.0, -0.5, -0.5])
"""First-layer biases: where each unit's ReLU switches on (its knot)."""

units = ["relu(x)", "relu(-x)", "relu(x-0.5)", "relu(-x-0.5)"]
"""Labels for the hidden units."""

hidden: cell(rows="x", cols="units") = relu(matmul(reshape(x, (-1, 1)), w1) + b1)
"""Hidden layer: each unit is max(0, w·x + b) — zero left of its knot, a straight line after."""

w2 = array([[0.5], [0.5], [1.0], [1.0]])
"""Second-layer weights: how much each unit's line adds to the output."""

b2 = 0.0
"""Output bias."""

prediction: cell(rows="x") = matmul(hidden, w2)[:, 0] + b2
"""The network's output: a weighted sum of the hidden units."""

error: cell(rows="x") = prediction - target
"""Per-point error."""

loss = mse(prediction, target)
"""Mean squared error over the 21 points: how far the curve is from the parabola."""
