"""A one-hidden-layer ReLU network learns y = x² by gradient descent — the course's demo.
Each hidden unit is max(0, w·x + b): zero left of its knot, a straight line after; the output
adds the units' lines up. `trained` runs plain gradient descent on the mean squared error
through these very cells (backpropagation: grad of `loss` with respect to each parameter);
`loss_history` is the error before every step, `fitted_prediction` the curve it learned.
Try n_neurons 2, 8 and 200, another learning rate, more steps or another seed."""

n_neurons = 8
"""Hidden ReLU units: 2 can only bend the line twice; 200 can follow the parabola closely."""

learning_rate = 0.02
"""How far each gradient-descent step moves the parameters (w ← w − learning_rate · gradient)."""

steps = 100
"""How many gradient-descent steps `trained` takes."""

seed = 0
"""Random seed of the starting weights: the same seed, the same start, the same training."""

x: cell(rows="x") = linspace(-1.0, 1.0, 21)
"""Inputs: 21 evenly spaced points from -1 to 1."""

target: cell(rows="x") = x**2
"""What we want the network to output: the parabola x²."""

w1 = random_normal((1, n_neurons), seed)
"""First-layer weights (1 input → n_neurons hidden units), random to start."""

b1 = random_normal((n_neurons,), seed + 1, 0.5)
"""First-layer biases: where each unit's ReLU switches on (its knot is at x = -b1/w1)."""

w2 = random_normal((n_neurons, 1), seed + 2, 1 / sqrt(n_neurons))
"""Second-layer weights: how much each unit's line adds to the output."""

b2 = zeros((1,))
"""Output bias."""

hidden: cell(rows="x") = relu(matmul(reshape(x, (-1, 1)), w1) + b1)
"""Hidden layer: each unit is max(0, w·x + b), for every input point."""

prediction: cell(rows="x") = matmul(hidden, w2)[:, 0] + b2
"""The network's output with the starting weights: a weighted sum of the hidden units."""

loss = mse(prediction, target)
"""Mean squared error over the 21 points, before training."""

trained = fit(loss, [w1, b1, w2, b2], learning_rate, steps)
"""Gradient descent: `steps` times, the gradient of `loss` with respect to w1, b1, w2 and b2
(computed backwards through the cells above), then each parameter moves against its gradient
by learning_rate × gradient. Holds the trained parameters and the loss history."""

loss_history: cell(plot="sparkline") = entry(trained, "loss")
"""The mean squared error before each step and after the last: it should fall."""

fitted_prediction: cell(rows="x", plot="versus target") = at(prediction, trained)
"""The curve the trained network draws: `prediction` computed with the trained parameters."""

fitted_loss = at(loss, trained)
"""The mean squared error after training."""
