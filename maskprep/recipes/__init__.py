"""Recipes: declarative descriptions of dataset layouts, in TOML.

A recipe says where a dataset's images and masks are, what the mask values
mean (classes, void), where instance ids come from, how the data is split, and
optionally default build options. maskprep ships recipes for common layouts
in ``pipelines/`` (``maskprep/pipelines`` in an installed wheel)::

    maskprep build-weights data/camvid -o camvid.zarr --recipe camvid
    maskprep build-weights data/camvid -o camvid.zarr --recipe my/camvid.toml

A bare name is looked up among the bundled recipes; anything containing a
``/`` or ending in ``.toml`` is a file. Options given explicitly on the command
line override the recipe's ``[build]`` defaults.

Keys (unknown keys are an error naming the key and the file):

``layout`` (required)
    ``instances`` or ``dsb2018`` (the built-in layouts, classes background and
    object), ``semantic`` (class-index masks), ``cityscapes``
    (``*_gtFine_instanceIds.png``), ``coco`` (instance annotation JSON), or the
    volume layouts ``hdf5`` and ``ome-zarr`` (classes background and object).
``image_key``, ``labels_key``
    hdf5: the image and instance-id dataset paths in each file (default
    CREMI's ``volumes/raw`` and ``volumes/labels/neuron_ids``); ome-zarr:
    ``labels_key`` names the label image under ``labels/``. With these (or
    ``split``/``splits``) a volume recipe also gives ``images``, the pattern of
    its files (``"{stem}.h5"``).
``description``
    Free text.
``images``, ``labels``
    Path patterns relative to the dataset directory, with ``{field}``
    placeholders, each standing for part of one path component:
    ``images = "images/{stem}.png"``, ``labels = "labels/{stem}_P.png"``.
    ``{stem}`` is the sample id; ``{split}`` is the split directory (see
    ``split``); other fields (``{city}``) only have to agree between image and
    mask. Every image needs its mask and every mask its image. For ``coco``,
    ``images`` is filled in from the annotation file's fields and each image's
    ``{file_name}`` (e.g. ``"{split}/{file_name}"``).
``annotations``
    coco: pattern of the annotation files, e.g.
    ``"annotations/instances_{split}.json"``.
``class_names`` or ``codes_file``
    The class list: names, or a text file in the dataset with one name a
    line (CamVid's ``codes.txt``). Without ``label_map``, mask value ``i``
    is the ``i``-th name. coco takes its classes from the categories:
    ``background`` then each category, in category id order.
``void_classes``
    Names in the class list whose mask values mean void (CamVid's ``Void``).
    They are left out of the classes, and the remaining classes keep their
    order, so the class indices after a void class shift down by one (the
    store's ``config.source.label_map`` records the mapping).
``label_map``
    Table source value -> class (index into the class list, or name), e.g.
    Cityscapes label id -> train id. With it, only listed values and
    ``void_values`` are allowed. Source values go up to 65535.
``void_values``
    Source values that mean void (Cityscapes' label ids with train id 255).
``unlabeled_value``
    A mask value meaning "not annotated" (void); the ``--unlabeled-value``
    option overrides it. For ``semantic`` it may be 0.
``instances``
    ``"layout"`` (Cityscapes ids, COCO annotations; default for those),
    ``"connected-components"`` (default for ``semantic``) or ``"none"``.
``instance_classes``
    With ``connected-components``: class names whose connected components
    are instances (default: every class but class 0). Other classes are
    "stuff": instance 0, background for the border term.
``split``
    ``"valid.txt"`` (default; any file name: validation stems or file names,
    one a line; absent file = everything is train), ``"directory"`` (the
    ``{split}`` field, mapped by ``splits``; default for coco) or ``"none"``.
``splits``
    Table ``{split}`` value -> ``"train"`` or ``"valid"``; samples under
    other values (Cityscapes ``test``) are left out.
``image_mode``
    Pillow mode images are converted to, e.g. ``"RGB"`` (COCO has some
    greyscale images).
``[build]``
    Default build options: ``void_label``, ``class_weights`` (a scheme name
    or a table of :class:`~maskprep.ClassWeightConfig` fields), ``w0``,
    ``sigma``, ``border_region``, ``tolerance``, ``spacing``, ``shard_size``,
    ``zstd_level``, ``max_pixels``, ``targets``, ``tile``, ``class_locations``,
    ``intensity_stats``.

Mask values that the recipe declares neither as a class nor as void are an
error naming the file and the value; a value equal to the void label gets its
own message (declare it void, or choose another void label). How each layout
is read, and how instance ids are numbered, is described in
:mod:`maskprep.ingest`.

A recipe is only a description: the build stores the resolved classes and
mapping (:class:`~maskprep.ingest.SourceSpec`) in its metadata, so a store
built with ``--recipe camvid`` equals one built with the same recipe given by
path.
"""

from maskprep.recipes.fields import BUILD_KEYS, RecipeError
from maskprep.recipes.files import available_recipes, load_recipe, read_recipe, recipe_dir
from maskprep.recipes.recipe import RECIPE_LAYOUTS_ALL, Recipe

__all__ = [
    "BUILD_KEYS",
    "RECIPE_LAYOUTS_ALL",
    "Recipe",
    "RecipeError",
    "available_recipes",
    "load_recipe",
    "read_recipe",
    "recipe_dir",
]
