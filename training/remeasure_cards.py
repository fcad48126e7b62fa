"""Remeasure the quality table of bundled model cards with the codec as it is now.

usage: python -m training.remeasure_cards [--models pca,rdnet,...]

A card's table (models/<id>/card.md, the one cards.card_rows reads: size estimates in the dialog come from it) was
measured when the model was trained, with the container and coders of that day. This measures each level again on
the held-out tiles through the real codec (training.measure.measure_package: bytes on disk, header included),
replaces the table in place (keeping the paper's float-rate column where the card has one), prints the change per
level, and refreshes every card's sentence on the other bundled models (train_model.bundled_comparison). The rest of
the prose is left to the person who runs it: say in it what changed.
"""
import argparse
import os
import re
import sys

from enmap_compress.plugin.core.cards import card_rows
from training.measure import card_table, measure_package
from training.shared_data import PROJECT_ROOT, potsdam_tiles
from training.train_model import bundled_comparison

TABLE_START = '| quality | real bpppb |'
PAPER_COLUMN = 'paper float bpppc'
COMPARISON_START = 'Other bundled models on the same held-out tiles '


def table_span(text):
    """(start, end) character offsets of the card's quality table (header, rule and rows)."""
    start = text.find(TABLE_START)
    if start < 0:
        raise SystemExit('no quality table in the card')
    end = start
    for line in text[start:].splitlines(keepends=True):
        if not line.startswith('|'):
            break
        end += len(line)
    return start, end


def paper_bpppc(table_text):
    """The paper's float rate the table repeats in its last column, or None when it has no such column."""
    lines = table_text.splitlines()
    if PAPER_COLUMN not in lines[0]:
        return None
    return float(re.findall(r'[-+0-9.eE]+', lines[2].split('|')[-2])[0])


def remeasure(model_id, rasters):
    path = os.path.join(PROJECT_ROOT, 'models', model_id, 'card.md')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    start, end = table_span(text)
    before = {row.level: row for row in card_rows(text)}
    rows = measure_package(os.path.dirname(path), rasters)
    table = card_table(rows, paper_bpppc(text[start:end])) + '\n'
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text[:start] + table + text[end:])
    for row in rows:
        old = before.get(row['level'])
        was = f'{old.bpppb:.4f} bpppb {old.psnr or float("nan"):.2f} dB' if old else 'no row'
        print(f"{model_id} q{row['level']}: {was} -> {row['bpppb']:.4f} bpppb {row['psnr']:.2f} dB")


def refresh_comparisons(models_dir):
    """Rewrite the 'Other bundled models ...' sentence of each card from the other cards' tables as they are now."""
    for model_id in sorted(os.listdir(models_dir)):
        path = os.path.join(models_dir, model_id, 'card.md')
        if not os.path.isfile(path):
            continue
        with open(path, encoding='utf-8') as f:
            text = f.read()
        lines = text.split('\n')
        lines = [bundled_comparison(model_id, models_dir) if line.startswith(COMPARISON_START) else line
                 for line in lines]
        updated = '\n'.join(lines)
        if updated != text:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(updated)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='pca,rdnet,cae1d,hycot,sscnet,cae3d')
    args = parser.parse_args(argv)
    rasters = potsdam_tiles(held_out=True)
    for model_id in args.models.split(','):
        remeasure(model_id, rasters)
    refresh_comparisons(os.path.join(PROJECT_ROOT, 'models'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
