"""A small archive folder: product folders, DLR ZIPs, a .tar.gz order holding a ZIP, a loose SPECTRAL_IMAGE TIF
and a corrupt ZIP, all synthetic."""
import os
import shutil
import tarfile

from tools import synthetic

SIZE = (40, 32)


def product_name(number):
    return f'ENMAP01-____L2A-DT{number:010d}_20240101T101010Z_001_V010400_20240102T000000Z'


def write_zip(folder, number, size=SIZE):
    """A product ZIP in `folder` (its unzipped folder is written elsewhere and removed)."""
    scratch = os.path.join(folder, f'.unzipped_{number}')
    product = synthetic.write_product(scratch, *size, seed=number, make_zip=True, product_name=product_name(number))
    target = os.path.join(folder, os.path.basename(product.zip))
    os.replace(product.zip, target)
    shutil.rmtree(scratch)
    return target


def write_order(path, zips):
    """An order: a tar (gzipped when `path` ends in .gz) holding the product ZIPs `zips` under their names."""
    with tarfile.open(str(path), 'w:gz' if str(path).endswith('.gz') else 'w') as tar:
        for zip_path in zips:
            tar.add(zip_path, arcname=os.path.basename(zip_path))


def make_archive(root, size=SIZE):
    """SRC with 5 good products in 4 forms plus one corrupt ZIP; returns (src, expected outputs)."""
    src = os.path.join(root, 'src')
    os.makedirs(os.path.join(src, '2024', 'june'))
    synthetic.write_product(os.path.join(src, '2024'), *size, seed=1, product_name=product_name(1))
    write_zip(os.path.join(src, '2024', 'june'), 2, size)
    write_zip(os.path.join(src, '2024', 'june'), 3, size)
    order_zip = write_zip(root, 4, size)
    with tarfile.open(os.path.join(src, 'order_17.tar.gz'), 'w:gz') as tar:
        tar.add(order_zip, arcname='order_17/' + os.path.basename(order_zip))
    os.remove(order_zip)
    synthetic.write_scene(os.path.join(src, '2024', 'loose-SPECTRAL_IMAGE.TIF'), *size, seed=5)
    with open(os.path.join(src, '2024', 'june', product_name(9) + '.ZIP'), 'wb') as handle:
        handle.write(b'PK\x03\x04 a download that broke off')
    expected = [f'2024/{product_name(1)}.ehc', f'2024/june/{product_name(2)}.ehc', f'2024/june/{product_name(3)}.ehc',
                f'order_17/order_17/{product_name(4)}.ehc', '2024/loose.ehc']
    return src, sorted(expected)


def leftovers(dest):
    """Temporary files, claim folders or scratch folders a finished run must not leave behind."""
    return [os.path.join(root, n) for root, dirs, names in os.walk(dest) for n in names + dirs
            if n.endswith('.part') or n.startswith('.enmap_compress_scratch')]
