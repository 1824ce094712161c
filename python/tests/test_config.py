"""Config: typed attributes, options by name, listing, validation, life cycle."""
import copy
import math
import os

import pytest

import convvae
from convvae import Config, ConvVAEError, Prior, Activation, CategoryInput, OptimizerKind, \
    ReconTarget


def invalid_arg(excinfo):
    return excinfo.value.name == "CVAE_E_INVALID_ARG"


def test_defaults_are_the_headers():
    with Config() as c:
        assert c.input_shape == (1, 28, 28)
        assert c.branches == 2
        assert c.conv_branch(1) == (1, 16, 3) and c.conv_branch(2) == (1, 32, 5)
        assert c.conv_branch(4) == convvae.Branch(layers=1, filters=32, kernel=5)
        assert (c.encoder_units, c.decoder_units, c.category_units) == (512, 512, 512)
        assert c.encoder_activation is Activation.RELU
        assert (c.latent_dim, c.clusters) == (50, 10)
        assert c.category_input is CategoryInput.Z
        assert c.prior is Prior.MIXTURE
        assert c.recon_target is ReconTarget.IMAGE
        assert c.conv_trainable is True and c.kmeans_init is False
        assert (c.lambda_, c.balance_weight, c.category_weight) == (2.5, 1.0, 1.0)
        assert c.warmup_epochs == 0
        assert c.optimizer is OptimizerKind.ADAM
        assert (c.learning_rate, c.adam_betas, c.adam_eps) == (1e-3, (0.9, 0.999), 1e-8)
        assert (c.weight_decay, c.momentum) == (0.0, 0.9)
        assert (c.batch_size, c.epochs, c.seed) == (100, 50, 1)
        assert c.threads == min(1024, os.cpu_count() or 1)  # the package's default: all cores


# attribute, a valid non-default value
TYPED_VALUES = [
    ("branches", 3), ("encoder_units", 64), ("decoder_units", 65), ("latent_dim", 7),
    ("clusters", 4), ("category_units", 9), ("conv_trainable", False), ("warmup_epochs", 2),
    ("kmeans_init", True), ("batch_size", 17), ("epochs", 3), ("threads", 2),
    ("encoder_activation", Activation.IDENTITY), ("category_input", CategoryInput.FEATURES),
    ("prior", Prior.STANDARD), ("recon_target", ReconTarget.FEATURES),
    ("optimizer", OptimizerKind.SGD), ("lambda_", 0.75), ("balance_weight", 0.5),
    ("category_weight", 0.25), ("learning_rate", 0.003), ("adam_eps", 1e-6),
    ("weight_decay", 0.01), ("momentum", 0.5), ("seed", 2 ** 64 - 1),
]


@pytest.mark.parametrize("attr,value", TYPED_VALUES)
def test_typed_attribute_round_trip(attr, value):
    name = "lambda" if attr == "lambda_" else attr
    with Config() as c:
        setattr(c, attr, value)
        assert getattr(c, attr) == value
        assert type(getattr(c, attr)) is type(value)
        # the by-name interface sees the same value, with the same type
        assert c[name] == value and type(c[name]) is type(value)
        assert c.get_text(name) == (str(int(value)) if isinstance(value, bool) else str(value))


def test_by_name_with_text_numbers_and_dashes():
    with Config() as c:
        c.set("latent-dim", "20")
        assert c.latent_dim == 20
        c["learning_rate"] = 0.1 + 0.2  # repr round-trips: no digits lost
        assert c.learning_rate == 0.1 + 0.2
        c["seed"] = "18446744073709551615"
        assert c.seed == 2 ** 64 - 1
        c["branch2_filters"] = 7
        assert c.conv_branch(2).filters == 7 and c["branch2-filters"] == 7
        c["kmeans_init"] = True
        assert c.get_text("kmeans_init") == "1"
        c["input_height"] = 16
        assert c.input_shape == (1, 16, 28)


def test_enumerations_by_text_member_and_number():
    with Config() as c:
        c.prior = "standard"
        assert c.prior is Prior.STANDARD and str(c.prior) == "standard"
        c["prior"] = Prior.MIXTURE
        assert c.get_text("prior") == "mixture"
        c.optimizer = 1
        assert c["optimizer"] is OptimizerKind.SGD
        c["encoder_activation"] = "identity"
        assert c.encoder_activation is Activation.IDENTITY
        for bad in ("Mixture", "gaussian"):
            with pytest.raises(ConvVAEError) as e:
                c.prior = bad
            assert invalid_arg(e)
        with pytest.raises(ConvVAEError) as e:
            c.prior = 7
        assert invalid_arg(e)
        assert c.prior is Prior.MIXTURE


@pytest.mark.parametrize("attr,value", [
    ("latent_dim", 0), ("latent_dim", 4097), ("clusters", 1), ("clusters", 1025),
    ("branches", 5), ("batch_size", 0), ("lambda_", -1.0), ("lambda_", math.nan),
    ("learning_rate", math.inf), ("learning_rate", 0.0), ("adam_eps", 2.0),
    ("momentum", 1.0), ("threads", 0), ("seed", -1), ("seed", 2 ** 64),
    ("latent_dim", 2 ** 32 + 50),
])
def test_out_of_range_is_invalid_arg_and_keeps_value(attr, value):
    with Config() as c:
        before = c.to_dict()
        with pytest.raises(ConvVAEError) as e:
            setattr(c, attr, value)
        assert invalid_arg(e)
        assert c.to_dict() == before


def test_multi_value_setters_validate_everything_first():
    with Config() as c:
        with pytest.raises(ConvVAEError) as e:
            c.input_shape = (1, 28, 0)
        assert invalid_arg(e) and c.input_shape == (1, 28, 28)
        with pytest.raises(ConvVAEError) as e:
            c.set_conv_branch(1, layers=2, kernel=4)  # even kernel
        assert invalid_arg(e) and "odd" in e.value.message and c.conv_branch(1) == (1, 16, 3)
        with pytest.raises(ConvVAEError) as e:
            c.conv_branch(5)
        assert invalid_arg(e)
        with pytest.raises(ConvVAEError) as e:
            c.adam_betas = (0.9, 1.0)
        assert invalid_arg(e) and c.adam_betas == (0.9, 0.999)
        with pytest.raises(ConvVAEError) as e:
            c["branch1_kernel"] = 2
        assert invalid_arg(e)


def test_multi_value_setters():
    with Config() as c:
        c.input_shape = (3, 32, 16)
        assert c.input_shape == (3, 32, 16)
        assert (c["input_channels"], c.input_height, c["input_width"]) == (3, 32, 16)
        c.input_shape = (8, 8)
        assert c.input_shape == (1, 8, 8)
        c.set_conv_branch(3, filters=12)
        assert c.conv_branch(3) == (1, 12, 5)
        c.set_conv_branch(1, 2, 4, 7)
        assert c.conv_branch(1) == (2, 4, 7) and c.branch1_kernel == 7
        c.adam_betas = (0.5, 0.75)
        assert c.adam_betas == (0.5, 0.75) and c.adam_beta2 == 0.75


def test_unknown_names():
    with Config() as c:
        for call in (lambda: c.get("no_such_option"), lambda: c.set("no_such_option", 1),
                     lambda: c["latent dim"], lambda: Config.help("nope")):
            with pytest.raises(ConvVAEError) as e:
                call()
            assert invalid_arg(e)
        with pytest.raises(ConvVAEError) as e:
            c.get("no_such_option")
        assert "no_such_option" in e.value.message
        with pytest.raises(AttributeError):
            c.latnt_dim = 3  # a typo must not pass silently
        assert "latent_dim" in c and "no_such_option" not in c


def test_bad_value_types():
    with Config() as c:
        with pytest.raises(TypeError):
            c.latent_dim = 2.5
        with pytest.raises(TypeError):
            c.learning_rate = "fast"
        with pytest.raises(TypeError):
            c.set("latent_dim", [1])
        with pytest.raises(ConvVAEError) as e:
            c["latent_dim"] = "abc"
        assert invalid_arg(e)
        with pytest.raises(ConvVAEError) as e:
            c["latent_dim"] = 2.5
        assert invalid_arg(e)


def test_option_listing_matches_the_library():
    opts = Config.options()
    names = [o.name for o in opts]
    assert names == Config.names() and len(names) == len(set(names))
    assert "latent_dim" in names and "branch4_kernel" in names
    for o in opts:
        assert o.help and o.kind is not None, o  # every option known to this package
        assert Config.help(o.name) == o.help
    assert set(names) == set(convvae.config._KINDS)
    with Config() as c:
        assert list(c) == names == c.keys()
        assert set(c.to_dict()) == set(names)
        for name in names:  # every option readable as text and as a value
            assert c.get_text(name)
            c.set(name, c.get(name))  # and writable with what it gave
    assert dict((o.name, o.kind) for o in opts)["prior"] == "standard|mixture"


def test_copy_is_independent_and_equal():
    with Config(latent_dim=9) as a:
        b = a.copy()
        assert b == a and b is not a
        b.latent_dim = 10
        assert a.latent_dim == 9 and b != a
        c = copy.deepcopy(a)
        assert c == a
        b.close()
        c.close()


def test_constructor_update_and_repr():
    with Config({"clusters": 3}, latent_dim=4, input_shape=(1, 8, 8), lambda_=1.5,
                prior="standard") as c:
        assert (c.clusters, c.latent_dim, c.input_shape, c["lambda"]) == (3, 4, (1, 8, 8), 1.5)
        r = repr(c)
        assert r.startswith("Config(") and "latent_dim=4" in r and "lambda_=1.5" in r
        assert "prior=Prior.STANDARD" in r and "epochs" not in r
        assert c.update(epochs=2) is c and c.epochs == 2


def test_close_is_idempotent_and_later_use_raises():
    c = Config()
    with c:
        c.latent_dim = 3
    assert c.closed
    c.close()
    for call in (lambda: c.latent_dim, lambda: c.get("latent_dim"), lambda: c.copy(),
                 lambda: setattr(c, "clusters", 3)):
        with pytest.raises(ConvVAEError) as e:
            call()
        assert e.value.name == "CVAE_E_STATE"
    assert repr(c) == "<Config (closed)>"
    with pytest.raises(ConvVAEError):
        with c:
            pass


def test_branch_counted_from_zero_still_works_but_warns():
    with Config() as c:
        with pytest.warns(DeprecationWarning):
            c.set_branch(1, filters=9)
        assert c.conv_branch(2).filters == 9
        with pytest.warns(DeprecationWarning):
            assert c.branch(1) == c.conv_branch(2)
